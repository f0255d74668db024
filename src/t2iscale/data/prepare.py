"""`t2iscale data prepare`: raw webdataset shards -> prepared shards of VAE latents + text embeddings.

Training on real data then never runs the VAE or the text encoder (the paper's setting trains 0.4B-4B
backbones on 256 px SDXL-VAE latents with a frozen OpenCLIP-H text encoder, Sec. 3). Every candidate caption
(the alt-text and up to 5 synthetic captions) is encoded, so the caption policy and caption dropout are
chosen when training reads the data (layout: `t2iscale.data.prepared`).

Steps: read the raw shards in order (`WebDatasetReader`: crop, resize, skip and count bad samples; with
`size`, only the first `size` of the nested-subset order) -> encode images and captions in batches -> write
shards of `shard_size` samples -> write prepared.json last.

Parallel: with `workers` > 1 the encoding (VAE, text encoder, noun tagger) runs in that many processes, each
with its own copy of the frozen parts, on batches handed out in order; the main process reads and decodes the raw
shards and writes the prepared shards in order, so the output is the same for any number of workers. The
progress bar counts raw samples against the pool's size (from the shard index) or `size`, with an ETA.

Captions come from `captions` (alt-text sources, the first a sample has wins: `txt`, `json:caption`, ...) and
`synthetic_captions` (`json:synthetic_captions`, or `none`); see `t2iscale.data.webdataset_reader.CaptionSources`.
With `noun_tagger` (a spaCy pipeline folder), each sample's image-noun pairs under every caption policy are counted
(`t2iscale.data.nouns`), stored per sample in its shard and per shard in prepared.json: the D of data scaling.

Resumable and idempotent: each shard is written to a temporary name and renamed, then
`prepare_state.json` records the raw-reader position and the bad-data counters just after the shard's last
sample. A rerun with the same settings continues from there (the reader skips what is done without
decoding it); a rerun after prepared.json exists does nothing; different settings in a used directory are
refused.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Literal

import torch
from pydantic import ConfigDict, Field

from t2iscale.data.caption_policy import CAPTION_POLICIES
from t2iscale.data.prepared_meta import (
    EMPTY_CAPTION_FILE,
    META_FILE,
    PreparedMeta,
    PreparedShard,
    shard_file_name,
)
from t2iscale.data.webdataset_reader import (
    DEFAULT_CAPTION_SOURCES,
    DEFAULT_SYNTHETIC_SOURCE,
    CaptionSources,
    DataCounters,
    RawSample,
    ReaderPosition,
    ShardIndex,
    WebDatasetReader,
    _is_local,
    expand_shards,
    subset_key,
)
from t2iscale.errors import UserError
from t2iscale.progress import progress_bar
from t2iscale.strict import Strict

log = logging.getLogger(__name__)

STATE_FILE = "prepare_state.json"
INDEX_FILE = "raw_index.json"
# The paper's default caption mix draws from the top-5 synthetic captions (Sec. 5); keep no more.
MAX_SYNTHETIC_CAPTIONS = 5


class PrepareConfig(Strict):
    """Settings of one preparation (unknown keys are errors)."""

    model_config = ConfigDict(frozen=True)

    shards: str = Field(description="raw shard pattern, e.g. 'dir/{000000..000009}.tar'")
    vae: Path = Field(description="diffusers AutoencoderKL directory (or a pipeline with vae/)")
    text_encoder: Path = Field(description="transformers CLIP/T5 text model directory (or a pipeline)")
    out: Path
    resolution: int = Field(256, gt=0)
    size: int | None = Field(None, gt=0, description="keep the first N samples of the nested-subset order")
    batch_size: int = Field(32, gt=0)
    shard_size: int = Field(1000, gt=0, description="samples per prepared shard")
    seed: int = Field(0, description="seed of the nested-subset order")
    storage_dtype: Literal["float16", "bfloat16"] = "float16"
    vae_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    text_layer: Literal["last", "penultimate"] | None = None
    text_max_length: int | None = Field(None, gt=0)
    device: str = "auto"
    max_bad_fraction: float = Field(0.01, ge=0.0, le=1.0)
    min_samples_for_check: int = Field(1000, ge=0)
    progress: bool = True
    captions: tuple[str, ...] = Field(
        DEFAULT_CAPTION_SOURCES, description="alt-text sources in order: txt, json:caption, json:captions.0"
    )
    synthetic_captions: str = Field(
        DEFAULT_SYNTHETIC_SOURCE, description="JSON field of the synthetic captions (a list), or none"
    )
    noun_tagger: Path | None = Field(None, description="spaCy pipeline folder: count image-noun pairs")
    workers: int = Field(1, ge=1, description="encoding processes")

    def caption_sources(self) -> CaptionSources:
        return CaptionSources(self.captions, self.synthetic_captions)

    def fingerprint(self, urls: list[str]) -> dict:
        """The settings that determine the output; batch size, device, workers and bad-data limits do not.

        Caption sources and the noun tagger enter only when set, so folders prepared before they existed still
        match their own settings."""
        extra = {}
        sources = self.caption_sources()
        if not sources.is_default:
            extra["captions"] = sources.describe()
        if self.noun_tagger is not None:
            extra["noun_tagger"] = str(self.noun_tagger.resolve())
        return {
            "shards": urls,
            "vae": str(self.vae.resolve()),
            "text_encoder": str(self.text_encoder.resolve()),
            "resolution": self.resolution,
            "size": self.size,
            "shard_size": self.shard_size,
            "seed": self.seed,
            "storage_dtype": self.storage_dtype,
            "vae_dtype": self.vae_dtype,
            "text_layer": self.text_layer,
            "text_max_length": self.text_max_length,
            **extra,
        }


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _save_safetensors_atomic(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    from t2iscale.file_modes import restore_umask_mode

    tmp = path.with_name(path.name + ".tmp")
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(tmp), metadata=metadata)
    restore_umask_mode(tmp)  # safetensors 0.8 writes 0600 (t2iscale.file_modes)
    os.replace(tmp, path)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class EncodedSample:
    """One sample ready for a shard, with the reader position and counters right after it."""

    __slots__ = (
        "captions",
        "counters",
        "key",
        "latent",
        "noun_pairs",
        "position",
        "subset_key",
        "text_ctx",
        "text_mask",
    )

    def __init__(
        self,
        sample: RawSample,
        captions,
        latent,
        text_ctx,
        text_mask,
        counters: dict,
        subset_seed: int,
        noun_pairs: list[int] | None = None,
    ):
        self.key, self.captions = sample.key, captions
        self.subset_key = subset_key(sample.key, subset_seed)
        self.latent, self.text_ctx, self.text_mask = latent, text_ctx, text_mask
        self.position = ReaderPosition(sample.shard_index, sample.ordinal)
        self.counters = counters
        self.noun_pairs = noun_pairs  # per caption policy (CAPTION_POLICIES order), with a noun tagger


class PrepareState:
    """prepare_state.json: finished shards, the reader position after them, the counters there."""

    def __init__(self, path: Path, fingerprint: dict):
        self.path, self.fingerprint = path, fingerprint
        self.shards: list[PreparedShard] = []
        self.position: ReaderPosition | None = None
        self.counters = DataCounters()
        if path.exists():
            saved = json.loads(path.read_text())
            if saved["fingerprint"] != fingerprint:
                raise UserError(
                    f"{path} belongs to a preparation with other settings; use a new --out directory "
                    f"or delete {path.parent}"
                )
            self.shards = [PreparedShard(**shard) for shard in saved["shards"]]
            self.position = ReaderPosition(*saved["position"]) if saved["position"] else None
            self.counters = DataCounters.from_json(saved["counters"])
            for shard in self.shards:
                if not (path.parent / shard.file).exists():
                    raise UserError(
                        f"{path} lists {shard.file}, which is missing; delete {path} to start over"
                    )

    @property
    def samples_done(self) -> int:
        return sum(shard.count for shard in self.shards)

    def add_shard(self, shard: PreparedShard, last: EncodedSample) -> None:
        self.shards.append(shard)
        self.position, self.counters = last.position, DataCounters.from_json(last.counters)
        _write_json_atomic(
            self.path,
            {
                "fingerprint": self.fingerprint,
                "shards": [s.model_dump() for s in self.shards],
                "position": [self.position.shard_index, self.position.ordinal],
                "counters": self.counters.to_json(),
            },
        )


def write_prepared_shard(out: Path, shard_index: int, samples: list[EncodedSample]) -> PreparedShard:
    counts = torch.tensor([0] + [len(sample.captions) for sample in samples])
    tensors = {
        "latents": torch.stack([sample.latent for sample in samples]),  # (K, C, h, w)
        "text_ctx": torch.cat([sample.text_ctx for sample in samples]),  # (T, L, D)
        "text_mask": torch.cat([sample.text_mask for sample in samples]),  # (T, L)
        "caption_offsets": torch.cumsum(counts, 0).to(torch.int64),  # (K + 1,)
        "subset_keys": torch.tensor([sample.subset_key for sample in samples], dtype=torch.int64),  # (K,)
    }
    counted = samples[0].noun_pairs is not None
    if counted:
        # (K, 4): each sample's image-noun pairs under alt, syn1, syn5, mix (`t2iscale.data.nouns`).
        tensors["noun_pairs"] = torch.tensor([sample.noun_pairs for sample in samples], dtype=torch.int32)
    metadata = {
        "keys": json.dumps([sample.key for sample in samples]),
        "captions": json.dumps([sample.captions for sample in samples]),
    }
    name = shard_file_name(shard_index)
    _save_safetensors_atomic(out / name, tensors, metadata)
    noun_pairs = None
    if counted:
        totals = tensors["noun_pairs"].sum(0).tolist()
        noun_pairs = {policy: int(total) for policy, total in zip(CAPTION_POLICIES, totals)}
    return PreparedShard(
        file=name,
        count=len(samples),
        with_synthetic=sum(len(sample.captions) > 1 for sample in samples),
        noun_pairs=noun_pairs,
    )


class FrozenEncoder:
    """The frozen parts of a preparation (text encoder, VAE, optional noun tagger) and one batch's encoding.

    Built once per process: in the main process with one worker, in each worker process otherwise."""

    def __init__(self, config: PrepareConfig):
        from t2iscale.data.vae import LatentVAE
        from t2iscale.text import load_text_encoder

        # The text encoder first (cheap to fail on a wrong directory), then the VAE.
        self.device = resolve_device(config.device)
        text_options = {"layer": config.text_layer, "max_length": config.text_max_length}
        self.text_encoder = load_text_encoder(
            config.text_encoder,
            device=self.device,
            **{k: v for k, v in text_options.items() if v is not None},
        )
        if self.text_encoder.trainable:
            raise UserError(
                f"{config.text_encoder} is a learned text encoder (trained with the backbone); "
                "prepared data needs a frozen pretrained one"
            )
        self.vae = LatentVAE(config.vae, dtype=config.vae_dtype, device=self.device)
        self.storage = {"float16": torch.float16, "bfloat16": torch.bfloat16}[config.storage_dtype]
        self.nouns = None
        if config.noun_tagger is not None:
            from t2iscale.data.nouns import NounCounter

            self.nouns = NounCounter(config.noun_tagger)

    def encode(self, images: torch.Tensor, captions: list[list[str]]) -> tuple:
        """images (B, 3, R, R), each sample's captions -> latents (B, C, h, w), text_ctx (T, L, D), text_mask
        (T, L) on the CPU in the storage dtype, and each sample's noun pairs per policy (None without a tagger)."""
        latents = self.vae.encode(images).to(self.storage).cpu()  # (B, C, h, w)
        text_ctx, text_mask = self.text_encoder.encode([text for group in captions for text in group])
        noun_pairs = self.nouns.count(captions) if self.nouns is not None else None
        return latents, text_ctx.to(self.storage).cpu(), text_mask.cpu(), noun_pairs


_WORKER_ENCODER: FrozenEncoder | None = None


def _start_worker(config: PrepareConfig, threads: int) -> None:
    global _WORKER_ENCODER
    torch.set_num_threads(threads)  # the machine's cores shared by the workers, not each taking all of them
    if _WORKER_ENCODER is None:  # spawned: load the frozen parts (forked: inherited from the main process)
        _WORKER_ENCODER = FrozenEncoder(config)


def _encode_in_worker(images: torch.Tensor, captions: list[list[str]]) -> tuple:
    return _WORKER_ENCODER.encode(images, captions)


def prepare(config: PrepareConfig) -> PreparedMeta:
    """Run (or finish, or skip) one preparation; returns the metadata written to prepared.json.

    Bad and lost samples (`WebDatasetReader`: unreadable samples, samples lost in truncated shards) count
    against `max_bad_fraction`; prepared.json's `counters` records them by reason and by shard.
    """
    global _WORKER_ENCODER  # what forked workers inherit
    urls = expand_shards(config.shards)
    sources = config.caption_sources()  # a bad caption source fails before anything is written
    fingerprint = config.fingerprint(urls)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / META_FILE
    if meta_path.exists():
        meta = PreparedMeta.model_validate_json(meta_path.read_text())
        if meta.fingerprint != fingerprint:
            raise UserError(f"{out} already holds prepared data made with other settings; use a new --out")
        log.info("%s is already prepared (%d samples); nothing to do", out, meta.count)
        return meta
    state = PrepareState(out / STATE_FILE, fingerprint)

    # The frozen parts, here (to fail early on a wrong folder, and for the empty caption) and in each worker.
    encoder = FrozenEncoder(config)
    text_encoder, vae, storage = encoder.text_encoder, encoder.vae, encoder.storage
    latent_shape = vae.latent_shape(config.resolution)
    noun_tagger = encoder.nouns.describe() if encoder.nouns is not None else None
    empty_ctx, empty_mask = text_encoder.encode([""])
    _save_safetensors_atomic(
        out / EMPTY_CAPTION_FILE,
        {"text_ctx": empty_ctx[0].to(storage).cpu(), "text_mask": empty_mask[0].cpu()},
    )

    reader = WebDatasetReader(
        urls,
        config.resolution,
        size=config.size,
        subset_seed=config.seed,
        index_path=out / INDEX_FILE if config.size is not None else None,
        max_bad_fraction=config.max_bad_fraction,
        min_samples_for_check=config.min_samples_for_check,
        progress=config.progress,
        captions=sources,
    )
    # The bar counts raw samples (good and bad) against the subset size or the pool (the shard index: tar headers
    # only, read once and cached); remote shards without a size have no total (the index would stream them).
    total = config.size
    if total is None and all(_is_local(url) for url in urls):
        total = ShardIndex.load_or_build(out / INDEX_FILE, urls, progress=config.progress).count
    progress = progress_bar(
        enabled=config.progress,
        total=total,
        initial=state.counters.seen,
        unit="img",
        desc=f"preparing ({config.workers} worker{'s' if config.workers > 1 else ''})",
    )

    pool = None
    if config.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # On the CPU the workers are forked and inherit the loaded models (as DataLoader workers do); CUDA cannot
        # be forked, so there each worker is spawned and loads its own copy.
        fork = encoder.device.type == "cpu" and "fork" in multiprocessing.get_all_start_methods()
        _WORKER_ENCODER = encoder if fork else None
        if not fork:
            del encoder
        threads = max(1, (os.cpu_count() or 1) // config.workers)
        pool = ProcessPoolExecutor(
            config.workers,
            mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
            initializer=_start_worker,
            initargs=(config, threads),
        )

    def submit(batch: list[tuple[RawSample, dict]]):
        images = torch.stack([sample.image for sample, _ in batch])  # (B, 3, R, R)
        captions = [[sample.alt, *sample.synthetic[:MAX_SYNTHETIC_CAPTIONS]] for sample, _ in batch]
        if pool is None:
            result = encoder.encode(images, captions)
            return lambda: result
        return pool.submit(_encode_in_worker, images, captions).result

    def collect(batch: list[tuple[RawSample, dict]], result) -> list[EncodedSample]:
        latents, text_ctx, text_mask, noun_pairs = result
        encoded, row = [], 0
        for index, ((sample, counters), latent) in enumerate(zip(batch, latents)):
            n = 1 + len(sample.synthetic[:MAX_SYNTHETIC_CAPTIONS])
            rows = slice(row, row + n)
            group = [sample.alt, *sample.synthetic[:MAX_SYNTHETIC_CAPTIONS]]
            pairs = None if noun_pairs is None else noun_pairs[index]
            encoded.append(
                EncodedSample(
                    sample, group, latent, text_ctx[rows], text_mask[rows], counters, config.seed, pairs
                )
            )
            row += n
        return encoded

    pending: list[EncodedSample] = []
    batch: list[tuple[RawSample, dict]] = []
    # Batches being encoded, oldest first: results are taken in submission order, so shards are written in order.
    in_flight: deque = deque()
    seen_at_progress = state.counters.seen

    def flush(final: bool) -> None:
        while len(pending) >= config.shard_size or (final and pending):
            shard_samples = pending[: config.shard_size]
            del pending[: config.shard_size]
            shard = write_prepared_shard(out, len(state.shards), shard_samples)
            state.add_shard(shard, shard_samples[-1])

    def drain(keep: int) -> None:
        while len(in_flight) > keep:
            done_batch, result = in_flight.popleft()
            pending.extend(collect(done_batch, result()))
            flush(final=False)

    try:
        for sample in reader.samples(start_after=state.position, counters=state.counters):
            batch.append((sample, reader.counters.to_json()))
            if len(batch) == config.batch_size:
                in_flight.append((batch, submit(batch)))
                batch = []
                drain(keep=2 * config.workers - 1)
                progress.update(reader.counters.seen - seen_at_progress)
                seen_at_progress = reader.counters.seen
        if batch:
            in_flight.append((batch, submit(batch)))
        drain(keep=0)
        flush(final=True)
    except UserError as error:
        raise UserError(_with_caption_hint(str(error), reader.counters, sources)) from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
            _WORKER_ENCODER = None
    progress.update(reader.counters.seen - seen_at_progress)
    progress.close()

    counters = reader.counters
    meta = PreparedMeta(
        count=state.samples_done,
        shards=state.shards,
        resolution=config.resolution,
        latent_shape=latent_shape,
        storage_dtype=config.storage_dtype,
        vae=vae.describe(),
        text_encoder=text_encoder.describe(),
        subset_seed=config.seed,
        size=config.size,
        source_shards=urls,
        counters=counters.to_json(),
        fingerprint=fingerprint,
        captions=sources.describe(),
        noun_tagger=noun_tagger,
    )
    if meta.count == 0:
        message = f"no usable samples in {config.shards!r} ({counters.summary()})"
        raise UserError(_with_caption_hint(message, counters, sources))
    _write_json_atomic(meta_path, meta.model_dump(mode="json"))
    (out / STATE_FILE).unlink(missing_ok=True)
    log.info(
        "prepared %d samples in %d shards into %s (%s)", meta.count, len(meta.shards), out, counters.summary()
    )
    return meta


def _with_caption_hint(message: str, counters: DataCounters, sources: CaptionSources) -> str:
    """A bad-data stop caused by missing captions says where captions were looked for and how to point elsewhere."""
    if not counters.bad.get("missing_caption"):
        return message
    return (
        f"{message}. Captions were read from {', '.join(sources.caption)}; for captions in a JSON field give "
        "--caption json:FIELD (e.g. json:caption or json:captions.0; repeat --caption to try several)"
    )

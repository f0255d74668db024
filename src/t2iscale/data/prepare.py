"""`t2iscale data prepare`: raw webdataset shards -> prepared shards of VAE latents + text embeddings.

Training on real data then never runs the VAE or the text encoder (the paper's setting trains 0.4B-4B
backbones on 256 px SDXL-VAE latents with a frozen OpenCLIP-H text encoder, Sec. 3). Every candidate caption
(the alt-text and up to 5 synthetic captions) is encoded, so the caption policy and caption dropout are
chosen when training reads the data (layout: `t2iscale.data.prepared`).

Steps: read the raw shards in order (`WebDatasetReader`: crop, resize, skip and count bad samples; with
`size`, only the first `size` of the nested-subset order) -> encode images and captions in batches -> write
shards of `shard_size` samples -> write prepared.json last.

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
from pathlib import Path
from typing import Literal

import torch
from pydantic import ConfigDict, Field

from t2iscale.data.prepared_meta import (
    EMPTY_CAPTION_FILE,
    META_FILE,
    PreparedMeta,
    PreparedShard,
    shard_file_name,
)
from t2iscale.data.webdataset_reader import (
    DataCounters,
    RawSample,
    ReaderPosition,
    WebDatasetReader,
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

    def fingerprint(self, urls: list[str]) -> dict:
        """The settings that determine the output; batch size, device and bad-data limits do not."""
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
        }


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _save_safetensors_atomic(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class EncodedSample:
    """One sample ready for a shard, with the reader position and counters right after it."""

    __slots__ = ("captions", "counters", "key", "latent", "position", "subset_key", "text_ctx", "text_mask")

    def __init__(
        self, sample: RawSample, captions, latent, text_ctx, text_mask, counters: dict, subset_seed: int
    ):
        self.key, self.captions = sample.key, captions
        self.subset_key = subset_key(sample.key, subset_seed)
        self.latent, self.text_ctx, self.text_mask = latent, text_ctx, text_mask
        self.position = ReaderPosition(sample.shard_index, sample.ordinal)
        self.counters = counters


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
    metadata = {
        "keys": json.dumps([sample.key for sample in samples]),
        "captions": json.dumps([sample.captions for sample in samples]),
    }
    name = shard_file_name(shard_index)
    _save_safetensors_atomic(out / name, tensors, metadata)
    return PreparedShard(file=name, count=len(samples))


def prepare(config: PrepareConfig) -> PreparedMeta:
    """Run (or finish, or skip) one preparation; returns the metadata written to prepared.json.

    Bad and lost samples (`WebDatasetReader`: unreadable samples, samples lost in truncated shards) count
    against `max_bad_fraction`; prepared.json's `counters` records them by reason and by shard.
    """
    from t2iscale.data.vae import LatentVAE
    from t2iscale.text import load_text_encoder

    urls = expand_shards(config.shards)
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

    # Frozen parts: the text encoder first (cheap to fail on a wrong directory), then the VAE.
    device = resolve_device(config.device)
    text_options = {"layer": config.text_layer, "max_length": config.text_max_length}
    text_encoder = load_text_encoder(
        config.text_encoder, device=device, **{k: v for k, v in text_options.items() if v is not None}
    )
    if text_encoder.trainable:
        raise UserError(
            f"{config.text_encoder} is a learned text encoder (trained with the backbone); "
            "prepared data needs a frozen pretrained one"
        )
    vae = LatentVAE(config.vae, dtype=config.vae_dtype, device=device)
    latent_shape = vae.latent_shape(config.resolution)
    storage = {"float16": torch.float16, "bfloat16": torch.bfloat16}[config.storage_dtype]

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
    )
    total = config.size if config.size is not None else None
    progress = progress_bar(
        enabled=config.progress, total=total, initial=state.samples_done, unit="img", desc="preparing"
    )

    def encode_batch(batch: list[tuple[RawSample, dict]]) -> list[EncodedSample]:
        images = torch.stack([sample.image for sample, _ in batch])  # (B, 3, R, R)
        latents = vae.encode(images).to(storage).cpu()  # (B, C, h, w)
        captions = [[sample.alt, *sample.synthetic[:MAX_SYNTHETIC_CAPTIONS]] for sample, _ in batch]
        text_ctx, text_mask = text_encoder.encode([text for group in captions for text in group])  # (T, L, D)
        text_ctx, text_mask = text_ctx.to(storage).cpu(), text_mask.cpu()
        encoded, row = [], 0
        for (sample, counters), group, latent in zip(batch, captions, latents):
            rows = slice(row, row + len(group))
            encoded.append(
                EncodedSample(sample, group, latent, text_ctx[rows], text_mask[rows], counters, config.seed)
            )
            row += len(group)
        progress.update(len(batch))
        return encoded

    pending: list[EncodedSample] = []
    batch: list[tuple[RawSample, dict]] = []

    def flush(final: bool) -> None:
        while len(pending) >= config.shard_size or (final and pending):
            shard_samples = pending[: config.shard_size]
            del pending[: config.shard_size]
            shard = write_prepared_shard(out, len(state.shards), shard_samples)
            state.add_shard(shard, shard_samples[-1])

    for sample in reader.samples(start_after=state.position, counters=state.counters):
        batch.append((sample, reader.counters.to_json()))
        if len(batch) == config.batch_size:
            pending.extend(encode_batch(batch))
            batch = []
            flush(final=False)
    if batch:
        pending.extend(encode_batch(batch))
    flush(final=True)
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
    )
    if meta.count == 0:
        raise UserError(f"no usable samples in {config.shards!r} ({counters.summary()})")
    _write_json_atomic(meta_path, meta.model_dump(mode="json"))
    (out / STATE_FILE).unlink(missing_ok=True)
    log.info(
        "prepared %d samples in %d shards into %s (%s)", meta.count, len(meta.shards), out, counters.summary()
    )
    return meta

"""Prepared shards (VAE latents + frozen text embeddings) and the reader that training uses on real data.

Layout of a prepared directory (written by `t2iscale data prepare`, `t2iscale.data.prepare`):

    prepared.json                 PreparedMeta: resolution, latent shape, VAE and text encoder, counts, ...
    empty_caption.safetensors     text_ctx (L, D), text_mask (L,): the empty caption, for caption dropout
    shard-000000.safetensors      one shard of K samples, T captions in all:
        latents          (K, C, h, w)  float16/bfloat16, normalized (`LatentVAE.encode`)
        text_ctx         (T, L, D)     float16/bfloat16, every candidate caption of every sample
        text_mask        (T, L)        bool, True = real token
        caption_offsets  (K + 1,)      int64; sample i's captions are rows offsets[i]:offsets[i+1],
                                       the alt-text first, then the synthetic captions best first
        subset_keys      (K,)          int64, each sample's place in the nested-subset order
      and in the safetensors metadata: "keys" and "captions" (JSON lists) for inspection.

Every candidate caption is stored, so the caption policy (paper Sec. 5) is applied when a sample is read, and one
preparation serves every caption ablation; the recipe's caption dropout is the training step's
(`t2iscale.train.model.PrecomputedTextConditioner`, with the stored empty caption). Text embeddings keep
all L positions (SD-family UNets attend to the padding positions too); that costs about
6 captions x 77 x 1024 x 2 bytes = 0.95 MB per image for OpenCLIP-H, next to 8 KB of latents.

The reader, `PreparedDataset`:
- size cap: the first `size` samples in subset-key order (the same order as `WebDatasetReader`), so
  a 1M-image run's data is a subset of the 2M run's; a caption policy that needs synthetic captions then
  drops (and counts) the chosen samples that have none, so all policies share the same images;
- order: each epoch is a permutation of those samples drawn from (seed, epoch); rank r of W reads
  positions r, r + W, r + 2W, ... of it, every rank the same number of samples;
- position: `state_dict()` = (epoch, samples consumed by all ranks in that epoch); restoring it resumes
  exactly, also with a different number of ranks;
- captions: the policy's draw uses an rng seeded from (seed, sample, epoch), so it does not depend on the order,
  the rank, the subset size or a resume.
Samples are read in the calling process from memory-mapped files (no decoding, so no DataLoader workers are
needed); this class is not a torch Dataset on purpose: the position lives here, not in worker processes.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from t2iscale.data.caption_policy import check_policy, choose_caption, needs_synthetic
from t2iscale.data.prepared_meta import META_FILE, read_prepared_meta
from t2iscale.data.webdataset_reader import DataCounters
from t2iscale.errors import UserError


def _storage_dtype(name: str) -> torch.dtype:
    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[name]


class PreparedDataset:
    """Reads prepared samples as (latent (C, h, w), text_ctx (L, D), text_mask (L,)) with the caption policy.

    `size` caps the data to its first `size` samples in the nested-subset order. Iterating yields the rest of the
    current epoch for this rank; `batches()` runs forever.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        caption_policy: str = "mix",
        seed: int = 0,
        size: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        max_bad_fraction: float = 0.01,
        dtype: torch.dtype = torch.float32,
        max_open_files: int = 16,
    ):
        from safetensors import safe_open

        self.root = Path(root)
        self.meta = read_prepared_meta(self.root)
        self.caption_policy = check_policy(caption_policy)
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is not in [0, world_size={world_size})")
        self.seed, self.size, self.rank, self.world_size = seed, size, rank, world_size
        self.dtype, self.max_open_files = dtype, max_open_files
        self._files: OrderedDict[int, object] = OrderedDict()

        # One row per stored sample: its shard, place in the shard, captions and subset key.
        shard_ids, local_ids, offsets, subset_keys = [], [], [], []
        for shard_id, shard in enumerate(self.meta.shards):
            path = self.root / shard.file
            if not path.exists():
                raise UserError(f"prepared shard {str(path)!r} listed in {META_FILE} is missing")
            with safe_open(str(path), framework="pt") as handle:
                shard_offsets = handle.get_tensor("caption_offsets").numpy()
                shard_keys = handle.get_tensor("subset_keys").numpy()
            if len(shard_keys) != shard.count:
                raise UserError(
                    f"prepared shard {str(path)!r} has {len(shard_keys)} samples, {META_FILE} says {shard.count}"
                )
            shard_ids.append(np.full(shard.count, shard_id, dtype=np.int32))
            local_ids.append(np.arange(shard.count, dtype=np.int32))
            offsets.append(shard_offsets)
            subset_keys.append(shard_keys)
        self._shard_of = np.concatenate(shard_ids) if shard_ids else np.zeros(0, np.int32)
        self._local_of = np.concatenate(local_ids) if local_ids else np.zeros(0, np.int32)
        self._offsets = offsets  # per shard
        self._subset_key = np.concatenate(subset_keys) if subset_keys else np.zeros(0, np.int64)
        caption_counts = np.concatenate([np.diff(o) for o in offsets]) if offsets else np.zeros(0, np.int64)

        # The nested subset: the first `size` stored samples in subset-key order (ties, about n^2/2^64
        # likely, broken by storage order). The cap picks images before the caption policy is looked at,
        # so every caption policy of a study trains on the same images.
        candidates = np.argsort(self._subset_key, kind="stable")
        if size is not None:
            if not 0 < size <= len(candidates):
                raise UserError(
                    f"dataset size {size} is not in [1, {len(candidates)}], the samples in {str(self.root)!r}"
                )
            candidates = candidates[:size]

        # Bad-data counters: those of the raw pass, plus the chosen samples this caption policy cannot use
        # (no synthetic captions); those are dropped, so such a policy may see slightly fewer images.
        self.counters = DataCounters.from_json(self.meta.counters)
        if needs_synthetic(self.caption_policy):
            usable = caption_counts[candidates] >= 2
            missing = int((~usable).sum())
            if missing:
                self.counters.bad["missing_synthetic_captions"] += missing
                self.counters.good -= missing
            if missing > max_bad_fraction * len(candidates):
                first = int(candidates[np.flatnonzero(~usable)[0]])
                shard_file = self.meta.shards[self._shard_of[first]].file
                raise UserError(
                    f"{missing} of {len(candidates)} prepared samples have no synthetic captions, more than "
                    f"max_bad_fraction {max_bad_fraction} allows for caption policy {self.caption_policy!r} "
                    f"(first: sample {self._key(first)!r} in {shard_file})"
                )
            candidates = candidates[usable]
        self.pool = candidates
        if len(self.pool) < world_size:
            raise UserError(f"{len(self.pool)} samples cannot be split over {world_size} ranks")
        self.epoch = 0
        self.consumed_in_epoch = 0  # samples consumed by all ranks together in this epoch
        self._order_cache: tuple[int, np.ndarray] | None = None

        with safe_open(str(self.root / self.meta.empty_caption_file), framework="pt") as handle:
            self._empty_ctx = handle.get_tensor("text_ctx").to(dtype)
            self._empty_mask = handle.get_tensor("text_mask").bool()

    # -- sizes and order ---------------------------------------------------------------------------------

    @property
    def images_per_epoch(self) -> int:
        """Samples in the (capped) dataset: what one epoch shows, summed over ranks."""
        return len(self.pool)

    def __len__(self) -> int:
        """Samples this rank reads in one whole epoch."""
        return len(self.pool) // self.world_size

    @property
    def empty_caption(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The empty caption's text_ctx (L, D) and text_mask (L,), for caption dropout in the training loop."""
        return self._empty_ctx, self._empty_mask

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Row ids of the samples in the order all ranks together read them in `epoch`."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            permutation = np.random.default_rng([self.seed, epoch]).permutation(len(self.pool))
            self._order_cache = (epoch, self.pool[permutation])
        return self._order_cache[1]

    # -- position ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "consumed_in_epoch": self.consumed_in_epoch,
            "seed": self.seed,
            "size": self.size,
            "images_per_epoch": self.images_per_epoch,
            "caption_policy": self.caption_policy,
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("seed", "size", "images_per_epoch", "caption_policy"):
            if state.get(name) != getattr(self, name):
                raise UserError(
                    f"cannot resume the data position: saved {name}={state.get(name)!r}, "
                    f"this reader has {getattr(self, name)!r}"
                )
        if not 0 <= state["consumed_in_epoch"] <= self.images_per_epoch:
            raise UserError(f"saved data position {state['consumed_in_epoch']} is outside the epoch")
        self.epoch, self.consumed_in_epoch = int(state["epoch"]), int(state["consumed_in_epoch"])

    # -- reading -----------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The rest of the current epoch for this rank; then the position moves to the next epoch."""
        order = self.epoch_order(self.epoch)
        # Every rank reads the same number of samples (DDP steps must match); the tail is dropped.
        steps = (len(order) - self.consumed_in_epoch) // self.world_size
        for _ in range(steps):
            row = order[self.consumed_in_epoch + self.rank]
            self.consumed_in_epoch += self.world_size  # before yielding: state_dict() counts this sample
            yield self.read(int(row), self.epoch)
        self.epoch, self.consumed_in_epoch = self.epoch + 1, 0

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Endless stacked batches: latents (B, C, h, w), text_ctx (B, L, D), text_mask (B, L)."""
        buffer = []
        while True:
            for sample in self:
                buffer.append(sample)
                if len(buffer) == batch_size:
                    yield tuple(torch.stack(column) for column in zip(*buffer))
                    buffer = []

    def read(self, row: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample `row` as shown in `epoch`: latent (C, h, w), text_ctx (L, D), text_mask (L,)."""
        handle = self._file(int(self._shard_of[row]))
        local = int(self._local_of[row])
        latent = handle.get_slice("latents")[local].to(self.dtype)  # (C, h, w)
        identity = int(self._subset_key[row])
        offsets = self._offsets[int(self._shard_of[row])]
        start, end = int(offsets[local]), int(offsets[local + 1])
        # The shared policy picks among caption labels: "0" = alt-text, "1".. = synthetic, best first.
        labels = [str(index) for index in range(end - start)]
        rng = random.Random(f"{self.seed}:{identity}:{epoch}")
        chosen = start + int(choose_caption(self.caption_policy, labels[0], labels[1:], rng))
        text_ctx = handle.get_slice("text_ctx")[chosen].to(self.dtype)  # (L, D)
        text_mask = handle.get_slice("text_mask")[chosen].bool()  # (L,)
        return latent, text_ctx, text_mask

    def caption_texts(self, row: int) -> list[str]:
        """The stored captions of sample `row` (alt-text first), for inspection and sample grids."""
        handle = self._file(int(self._shard_of[row]))
        return json.loads(handle.metadata()["captions"])[int(self._local_of[row])]

    def _key(self, row: int) -> str:
        handle = self._file(int(self._shard_of[row]))
        return json.loads(handle.metadata()["keys"])[int(self._local_of[row])]

    def _file(self, shard_id: int):
        from safetensors import safe_open

        if shard_id in self._files:
            self._files.move_to_end(shard_id)
        else:
            self._files[shard_id] = safe_open(
                str(self.root / self.meta.shards[shard_id].file), framework="pt"
            )
            if len(self._files) > self.max_open_files:
                self._files.popitem(last=False)
        return self._files[shard_id]

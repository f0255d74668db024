"""Where training batches come from. One interface, so the loop never branches on the kind of data.

A source hands each process its slice of the *global* batch, in an order fixed by (run seed, position), so:
- a run resumed from a checkpoint sees exactly the batches an uninterrupted run would (the position is checkpointed);
- N processes with a global batch B train on the same samples as one process with batch B (each takes B/N of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Batch:
    x0: torch.Tensor  # (b, C, H, W) clean inputs in model space: pixels in [-1, 1] or scaled VAE latents
    captions: list[str] | None = None  # raw captions, for a learned text encoder (shapes world)
    text_ctx: torch.Tensor | None = None  # (b, L, D) precomputed embeddings (prepared real data)
    text_mask: torch.Tensor | None = None  # (b, L) bool
    # Row of each sample within the global batch, so its noise, timestep and caption-dropout draw are the same
    # whatever the number of processes.
    global_rows: torch.Tensor | None = None  # (b,) int64

    def micro(self, part: slice, device: torch.device) -> dict:
        """The keyword inputs of `DenoisingModel.forward` for one micro-batch."""
        inputs = {"x0": self.x0[part].to(device, non_blocking=True)}
        if self.captions is not None:
            inputs["captions"] = self.captions[part]
        if self.text_ctx is not None:
            inputs["text_ctx"] = self.text_ctx[part].to(device, non_blocking=True)
            inputs["text_mask"] = self.text_mask[part].to(device, non_blocking=True)
        return inputs


@dataclass
class StepInputs:
    step: int  # 0-based index of the optimizer step these inputs are for
    batch: Batch
    noise: torch.Tensor  # (b, C, H, W) this process's rows of the global draw
    time: torch.Tensor  # (b,)
    drop: torch.Tensor  # (b,) bool
    source_state: dict  # the source's position after this batch (what a checkpoint after this step stores)
    data_counters: dict = field(default_factory=dict)  # the source's counters after this batch (metrics)

    @classmethod
    def draw(
        cls,
        step: int,
        batch: Batch,
        global_batch: int,
        objective,
        seed: int,
        caption_dropout: float,
        source_state: dict | None = None,
        data_counters: dict | None = None,
    ) -> StepInputs:
        """`batch` with its rows of the global batch's randomness at `step`: noise, objective time and the
        caption-dropout coin of all `global_batch` rows from (run seed, step) alone, so they do not depend on the
        number of processes or on a resume."""
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        shape = (global_batch, *batch.x0.shape[1:])
        noise, time = objective.draw_noise_and_time(torch.empty(shape), generator)  # (B, C, H, W), (B,)
        drop = torch.rand(global_batch, generator=generator) < caption_dropout  # (B,)
        mine = batch.global_rows if batch.global_rows is not None else slice(None)  # this process's rows
        return cls(
            step=step,
            batch=batch,
            noise=noise[mine],
            time=time[mine],
            drop=drop[mine],
            source_state=source_state or {},
            data_counters=data_counters or {},
        )


def rank_slice(global_batch: int, rank: int, world_size: int) -> slice:
    per_rank = global_batch // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def pixels_to_model_space(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


class ShapesSource:
    """The shapes world: rendered once into a cache that the study's runs share (`data.render_cache`,
    `t2iscale.data.shapes.cache`), or on the fly."""

    def __init__(self, data_config, run_seed: int):
        from t2iscale.data.shapes import ShapesDataset

        self.dataset = ShapesDataset(
            world=data_config.world,
            seed=data_config.seed,
            size=data_config.size,
            policy=data_config.caption_policy,
            resolution=data_config.resolution,
        )
        self.run_seed = run_seed
        self.position = 0  # global samples consumed so far
        self._permutations: dict[int, np.ndarray] = {}
        self._use_cache = data_config.render_cache
        self._rendered = None  # the cached set, opened (or rendered) at the first batch

    @property
    def size(self) -> int:
        return len(self.dataset)

    def _order(self, epoch: int) -> np.ndarray:
        # One permutation per epoch from (run seed, epoch): the data order is part of the run, not of the dataset.
        if epoch not in self._permutations:
            self._permutations = {epoch: np.random.default_rng([self.run_seed, epoch]).permutation(self.size)}
        return self._permutations[epoch]

    def next_batch(self, global_batch: int, rank: int, world_size: int) -> Batch:
        positions = np.arange(self.position, self.position + global_batch)[
            rank_slice(global_batch, rank, world_size)
        ]
        self.position += global_batch
        images = np.empty(
            (len(positions), self.dataset.resolution, self.dataset.resolution, 3), dtype=np.uint8
        )
        if self._use_cache and self._rendered is None:
            from t2iscale.data.shapes.cache import rendered_set

            self._rendered = rendered_set(self.dataset)
        captions = []
        for row, position in enumerate(positions):
            epoch, offset = divmod(int(position), self.size)
            index = int(self._order(epoch)[offset])
            if self._rendered is None:
                item_images, item_captions = self.dataset.batch([index], epoch)
                images[row], caption = item_images[0], item_captions[0]
            else:  # the same image and caption, read instead of rendered
                images[row] = self._rendered.images[index]
                caption = self.dataset.caption(index, epoch, self._rendered.captions(index))
            captions.append(caption)
        rows = torch.arange(global_batch)[rank_slice(global_batch, rank, world_size)]
        return Batch(x0=pixels_to_model_space(images), captions=captions, global_rows=rows)

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


class PreparedSource:
    """Prepared real data (`t2iscale data prepare`): VAE latents and frozen-encoder embeddings, nested size cap.

    Process r of W reads the global positions r, r+W, r+2W, ... of the epoch order (PreparedDataset's split).
    """

    def __init__(self, data_config, run_seed: int, rank: int = 0, world_size: int = 1):
        from t2iscale.data.prepared import PreparedDataset

        self.dataset = PreparedDataset(
            data_config.path,
            caption_policy=data_config.caption_policy,
            seed=run_seed,
            size=data_config.size,
            rank=rank,
            world_size=world_size,
            max_bad_fraction=data_config.max_bad_fraction,
        )
        self.rank, self.world_size = rank, world_size
        self._batches = None  # created on first use, after a possible load_state_dict

    @property
    def size(self) -> int:
        return self.dataset.images_per_epoch

    def empty_caption(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.empty_caption  # (L, D), (L,)

    def next_batch(self, global_batch: int, rank: int, world_size: int) -> Batch:
        per_rank = global_batch // world_size
        if self._batches is None:
            self._batches = self.dataset.batches(per_rank)
        latents, text_ctx, text_mask = next(self._batches)  # (b, C, h, w), (b, L, D), (b, L)
        rows = rank + world_size * torch.arange(per_rank)
        return Batch(x0=latents, text_ctx=text_ctx, text_mask=text_mask, global_rows=rows)

    def counters(self) -> dict:
        return self.dataset.counters.as_metrics()

    def state_dict(self) -> dict:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)
        self._batches = None

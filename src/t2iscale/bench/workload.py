"""The synthetic batch every loop in a benchmark cell gets: random latents (or pixels) and text context.

Throughput does not depend on the values, but zeros would hide nothing-written bugs and can run faster than
real data, so everything is drawn from a seeded generator. The text mask pads each row after a random length,
as real captions are padded, so the models' cross-attention masking runs as it does in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2iscale.zoo.setting import Setting

# Tokens a tokenizer keeps for the empty caption (start and end token); the rest is padding.
EMPTY_CAPTION_TOKENS = 2


@dataclass
class Workload:
    x0: torch.Tensor  # (B, C, H, W) clean latents / pixels, float32
    timesteps: torch.Tensor  # (B,) float32 in diffusers units [0, 1000)
    text_ctx: torch.Tensor  # (B, L, D) float32
    text_mask: torch.Tensor  # (B, L) bool, True = real token
    empty_ctx: torch.Tensor  # (L, D) the empty caption's context (classifier-free guidance, caption dropout)
    empty_mask: torch.Tensor  # (L,) bool

    @property
    def batch_size(self) -> int:
        return self.x0.shape[0]

    def to(self, device: torch.device) -> Workload:
        return Workload(**{key: value.to(device) for key, value in vars(self).items()})


def random_workload(setting: Setting, batch_size: int, seed: int) -> Workload:
    """A batch on the CPU (the training loops move it to the device each step, as a data loader's batch is)."""
    generator = torch.Generator().manual_seed(seed)
    side, length = setting.sample_size, setting.text_len
    x0 = torch.randn(batch_size, setting.in_channels, side, side, generator=generator)
    timesteps = torch.randint(0, 1000, (batch_size,), generator=generator).float()
    text_ctx = torch.randn(batch_size, length, setting.text_dim, generator=generator)
    lengths = torch.randint(1, length + 1, (batch_size, 1), generator=generator)
    text_mask = torch.arange(length) < lengths  # (B, L)
    empty_ctx = torch.randn(length, setting.text_dim, generator=generator)
    empty_mask = torch.arange(length) < min(EMPTY_CAPTION_TOKENS, length)
    return Workload(x0, timesteps, text_ctx, text_mask, empty_ctx, empty_mask)

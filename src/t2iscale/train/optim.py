"""The optimizer rule of the recipe: AdamW, linear warm-up, then a constant learning rate (paper Sec. 3)."""

from __future__ import annotations

import torch
from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup


def make_optimizer(parameters, recipe, device: torch.device) -> torch.optim.Optimizer:
    # The fused kernel updates all parameters in one pass (CUDA, and CPU since torch 2.4). On CPU it cut AdamW from
    # 11.7 to 3.5 ms of a 90 ms step (measured, sdxl-c4 at 16 px, batch 32); other devices keep the default.
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    return torch.optim.AdamW(
        parameters,
        lr=recipe.lr,
        betas=(recipe.adam_beta1, recipe.adam_beta2),
        eps=recipe.adam_eps,
        weight_decay=recipe.weight_decay,
        **fused,
    )


def make_lr_schedule(optimizer: torch.optim.Optimizer, recipe, total_steps: int):
    """Warm-up, then constant (the paper's) or a cosine decay to zero at `total_steps` (short runs)."""
    if recipe.lr_schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, total_steps)
    return get_constant_schedule_with_warmup(optimizer, num_warmup_steps=recipe.warmup_steps)

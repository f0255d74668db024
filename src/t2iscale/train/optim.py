"""The optimizer rule of the recipe: AdamW, linear warm-up, then a constant learning rate (paper Sec. 3)."""

from __future__ import annotations

import torch
from diffusers.optimization import get_constant_schedule_with_warmup


def make_optimizer(parameters, recipe, device: torch.device) -> torch.optim.Optimizer:
    # The fused kernel is one launch for all parameters on CUDA; CPU keeps the default implementation.
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(
        parameters,
        lr=recipe.lr,
        betas=(recipe.adam_beta1, recipe.adam_beta2),
        eps=recipe.adam_eps,
        weight_decay=recipe.weight_decay,
        **fused,
    )


def make_lr_schedule(optimizer: torch.optim.Optimizer, recipe):
    return get_constant_schedule_with_warmup(optimizer, num_warmup_steps=recipe.warmup_steps)

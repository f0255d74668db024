"""What the training loop optimizes: one module holding everything trained, whose forward is the loss.

Keeping the backbone and (in the shapes world) the learned text encoder in one module lets DDP/FSDP wrap a single
object, and keeps the loop free of any branch on the backbone's family or the kind of data.
"""

from __future__ import annotations

import torch
from torch import nn

from t2iscale.diffusion.objectives import Objective
from t2iscale.text.base import TextEncoder
from t2iscale.zoo.backbone import Backbone


class LearnedTextConditioner(nn.Module):
    """Raw captions -> a jointly trained text encoder. Dropped captions become '' before encoding (CFG)."""

    def __init__(self, encoder: TextEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, drop: torch.Tensor, captions: list[str], **_) -> tuple[torch.Tensor, torch.Tensor]:
        kept = ["" if dropped else caption for caption, dropped in zip(captions, drop.tolist())]
        return self.encoder.encode(kept)  # (b, L, D), (b, L)


class PrecomputedTextConditioner(nn.Module):
    """Embeddings prepared offline by a frozen encoder. Dropped captions take the stored empty-caption embedding."""

    def __init__(self, empty_ctx: torch.Tensor, empty_mask: torch.Tensor):
        super().__init__()
        self.register_buffer("empty_ctx", empty_ctx.float(), persistent=False)  # (L, D)
        self.register_buffer("empty_mask", empty_mask.bool(), persistent=False)  # (L,)

    def forward(
        self, drop: torch.Tensor, text_ctx: torch.Tensor, text_mask: torch.Tensor, **_
    ) -> tuple[torch.Tensor, torch.Tensor]:
        drop = drop.to(text_ctx.device)
        ctx = torch.where(drop[:, None, None], self.empty_ctx.to(text_ctx.dtype), text_ctx)  # (b, L, D)
        mask = torch.where(drop[:, None], self.empty_mask, text_mask)  # (b, L)
        return ctx, mask


class DenoisingModel(nn.Module):
    def __init__(self, backbone: Backbone, conditioner: nn.Module, objective: Objective):
        super().__init__()
        self.backbone = backbone
        self.conditioner = conditioner
        self.objective = objective

    def forward(
        self,
        x0: torch.Tensor,  # (b, C, H, W)
        noise: torch.Tensor,  # (b, C, H, W)
        time: torch.Tensor,  # (b,) the objective's own time variable
        drop: torch.Tensor,  # (b,) bool: caption dropped for classifier-free guidance
        captions: list[str] | None = None,
        text_ctx: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ctx, mask = self.conditioner(
            drop, captions=captions, text_ctx=text_ctx, text_mask=text_mask
        )  # (b, L, D)
        return self.objective.loss(
            self.backbone, x0, noise, time, ctx, mask
        )  # fp32 scalar, also under autocast

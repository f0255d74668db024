"""The stock baseline: a plain diffusers model driven the way diffusers' own scripts and pipelines drive it.

It is the yardstick for the toolkit's overhead (or gain), so it is deliberately unremarkable:
- the model is `diffusers.<ModelClass>(**config)` from the same zoo config, with no adapter, no compile and no
  channels-last;
- training follows diffusers' `train_text_to_image.py` step: batch to the device, `torch.randn_like` noise,
  `torch.randint` timesteps on the device, `DDPMScheduler.add_noise`, the model under bf16 autocast over fp32
  weights, MSE to the noise, backward, global-norm clipping (that script clips at 1.0 by default; the recipe's
  `grad_clip` is used), `torch.optim.AdamW` with its default (not fused) implementation, `zero_grad`;
  no EMA (that script's default);
- sampling follows the diffusers pipelines: `DDIMScheduler` with the SD settings, timesteps on the device,
  `torch.randn` starting latents on the device, [uncond; cond] batched through the model, CFG in a Python loop.
Both use the paper's DDPM schedule (LDM scaled-linear β, 0.00085 → 0.012, 1000 steps; DESIGN.md "The recipe").
"""

from __future__ import annotations

import contextlib

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from t2iscale.diffusion.objectives import DDPMConfig
from t2iscale.zoo.names import model_config
from t2iscale.zoo.setting import Setting


def build_stock_model(name: str, setting: Setting, device: torch.device) -> nn.Module:
    """The zoo config of `name`, instantiated as the plain diffusers class (random weights, fp32)."""
    config = dict(model_config(name, setting))
    model_class = getattr(diffusers, config.pop("_class_name"))
    with torch.device(device):
        return model_class(**config)


def stock_predict(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """One call as the family's diffusers script/pipeline makes it. x (B, C, H, W), t (B,), ctx (B, L, D)."""
    if isinstance(model, diffusers.UNet2DConditionModel):
        # train_text_to_image.py and StableDiffusionPipeline pass no text mask.
        return model(x, t, encoder_hidden_states=ctx).sample
    if isinstance(model, diffusers.PixArtTransformer2DModel):
        # PixArtAlphaPipeline passes the prompt mask and no size conditions (for a non-1024-MS model).
        out = model(
            x,
            encoder_hidden_states=ctx,
            encoder_attention_mask=mask,
            timestep=t,
            added_cond_kwargs={"resolution": None, "aspect_ratio": None},
        ).sample
        return out[:, : x.shape[1]]  # a learned-sigma model's first half
    # StableDiffusion3Pipeline: no mask; the pooled input stands for the CLIP pooled embeddings.
    return model(
        hidden_states=x, timestep=t, encoder_hidden_states=ctx, pooled_projections=ctx.mean(dim=1)
    ).sample


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _schedule_kwargs() -> dict:
    schedule = DDPMConfig()
    return {
        "num_train_timesteps": schedule.num_train_timesteps,
        "beta_start": schedule.beta_start,
        "beta_end": schedule.beta_end,
        "beta_schedule": schedule.beta_schedule,
    }


class StockTrainStep:
    def __init__(self, model: nn.Module, recipe, device: torch.device, autocast_dtype: torch.dtype | None):
        self.model = model.train()
        self.device, self.autocast_dtype = device, autocast_dtype
        self.grad_clip = recipe.grad_clip if recipe.clips_gradients else None
        self.noise_scheduler = DDPMScheduler(**_schedule_kwargs())
        self.optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=recipe.lr,
            betas=(recipe.adam_beta1, recipe.adam_beta2),
            weight_decay=recipe.weight_decay,
            eps=recipe.adam_eps,
        )

    def __call__(self, x0: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latents = x0.to(self.device, non_blocking=True)  # (B, C, H, W)
        ctx = ctx.to(self.device, non_blocking=True)  # (B, L, D)
        mask = mask.to(self.device, non_blocking=True)  # (B, L)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=self.device
        ).long()
        noisy_latents = self.noise_scheduler.add_noise(latents, noise, timesteps)
        with _autocast(self.device, self.autocast_dtype):
            prediction = stock_predict(self.model, noisy_latents, timesteps, ctx, mask)
        loss = F.mse_loss(prediction.float(), noise.float(), reduction="mean")
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


@torch.inference_mode()
def stock_sample(
    model: nn.Module,
    shape: tuple[int, ...],
    ctx: torch.Tensor,
    mask: torch.Tensor,
    empty_ctx: torch.Tensor,
    empty_mask: torch.Tensor,
    steps: int,
    guidance: float,
    autocast_dtype: torch.dtype | None,
) -> np.ndarray:
    """DDIM + CFG as the SD pipelines write it; ctx (B, L, D) on the model's device; returns x0 on the host."""
    device = ctx.device
    batch = ctx.shape[0]
    scheduler = DDIMScheduler(**_schedule_kwargs(), clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    scheduler.set_timesteps(steps, device=device)
    guided = guidance != 1.0
    if guided:
        ctx = torch.cat([empty_ctx.expand(batch, *ctx.shape[1:]), ctx])  # (2B, L, D)
        mask = torch.cat([empty_mask.expand(batch, *mask.shape[1:]), mask])  # (2B, L)
    latents = torch.randn((batch, *shape), device=device) * scheduler.init_noise_sigma  # (B, C, H, W)
    for t in scheduler.timesteps:
        model_input = torch.cat([latents] * 2) if guided else latents
        model_input = scheduler.scale_model_input(model_input, t)
        with _autocast(device, autocast_dtype):
            prediction = stock_predict(model, model_input, t.expand(model_input.shape[0]), ctx, mask)
        if guided:
            uncond, cond = prediction.chunk(2)
            prediction = uncond + guidance * (cond - uncond)
        latents = scheduler.step(prediction, t, latents, return_dict=False)[0]
    return latents.float().cpu().numpy()

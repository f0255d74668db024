"""Samplers with classifier-free guidance, built on diffusers schedulers.

- `ddim` (for `ddpm-eps` / `ddpm-v`): `DDIMScheduler` on the objective's schedule, eta = 0 (deterministic),
  the evaluation sampler of the paper's recipe (DDIM, 50 steps, CFG 7.5; DESIGN.md, "The recipe"). LDM
  settings: `set_alpha_to_one=False` (the last step lands on ᾱ_0 = 1 − β_0, not on ᾱ = 1) and
  `steps_offset=1` with "leading" timestep spacing by default, as in the SD1/SD2 scheduler configs, so 50
  steps visit t = 981, 961, …, 1. Like the diffusers
  pipelines, the result is the last step's `prev_sample` (x at ᾱ_0). A latent run exported with `t2iscale
  export` (this scheduler, saved) gives the same images in a stock `StableDiffusionPipeline` for the same seeds:
  tested bitwise in float32 (`tests/eval/test_export.py`). That needs the backbone call to match the pipeline's
  too; how each family takes the text mask is set in `t2iscale.zoo.backbone` (UNets: no mask, as the pipelines).
- `flow-euler` (for `flow`): `FlowMatchEulerDiscreteScheduler`, σ = linspace(1, 1/1000, steps) (then
  shifted by the objective's `shift`), one Euler step per backbone call; the last step lands on σ = 0. The
  first backbone call sees t = 1000 (σ = 1), the edge of the training range.

Guidance: the conditional and unconditional halves go through the backbone as one batch of 2B, and the
prediction is uncond + g·(cond − uncond). g = 1 skips the unconditional half (B per call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from t2iscale.diffusion.objectives import DDPMObjective, FlowObjective, Objective
from t2iscale.errors import UserError
from t2iscale.progress import progress_bar

DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.5
SAMPLERS = ("ddim", "flow-euler")
_SAMPLER_OBJECTIVE = {"ddim": DDPMObjective, "flow-euler": FlowObjective}


def make_scheduler(
    objective: Objective, sampler: str | None = None, clip_sample: bool = False
) -> SchedulerMixin:
    """A fresh inference scheduler for `objective` (schedulers keep per-run state, so one per `sample` call).

    `clip_sample` clamps DDIM's predicted x0 to [-1, 1] at every step (pixel-space models); latents must not
    be clipped. The flow Euler scheduler has no such option; `sample` clamps its final output instead.
    """
    sampler = sampler or objective.sampler_default()
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; valid samplers: {', '.join(SAMPLERS)}")
    if not isinstance(objective, _SAMPLER_OBJECTIVE[sampler]):
        raise UserError(
            f"sampler {sampler!r} does not invert objective {objective.name!r}; "
            f"use {objective.sampler_default()!r}"
        )
    config = objective.config()
    if sampler == "ddim":
        return DDIMScheduler(
            num_train_timesteps=config.num_train_timesteps,
            beta_start=config.beta_start,
            beta_end=config.beta_end,
            beta_schedule=config.beta_schedule,
            prediction_type=objective.prediction_type,
            clip_sample=clip_sample,
            clip_sample_range=1.0,
            set_alpha_to_one=False,
            steps_offset=1,
            timestep_spacing=config.timestep_spacing,
        )
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=config.num_train_timesteps, shift=config.shift)


def _guidance_context(
    text_ctx: torch.Tensor,
    text_mask: torch.Tensor,
    uncond_ctx: torch.Tensor | None,
    uncond_mask: torch.Tensor | None,
    guided: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context for one backbone call: (B, L, D) as is, or [uncond; cond] as (2B, L, D) when guided."""
    if not guided:
        return text_ctx, text_mask
    if uncond_ctx is None or uncond_mask is None:
        raise ValueError("guidance != 1 needs uncond_ctx and uncond_mask (the empty caption's encoding)")
    if uncond_ctx.shape[1:] != text_ctx.shape[1:] or uncond_mask.shape[1:] != text_mask.shape[1:]:
        raise ValueError(
            f"uncond context {tuple(uncond_ctx.shape)} / mask {tuple(uncond_mask.shape)} must match the text "
            f"context {tuple(text_ctx.shape)} / mask {tuple(text_mask.shape)} except in the batch dimension"
        )
    batch = text_ctx.shape[0]
    # A single empty-caption encoding (1, L, D) serves the whole batch.
    uncond_ctx = uncond_ctx.expand(batch, *text_ctx.shape[1:])  # (B, L, D)
    uncond_mask = uncond_mask.expand(batch, *text_mask.shape[1:])  # (B, L)
    return torch.cat([uncond_ctx, text_ctx.to(uncond_ctx.dtype)]), torch.cat([uncond_mask, text_mask])


# The zoo's backbone signature: (x, t, text_ctx, text_mask) -> prediction; a Backbone module or a wrapper of one
# (e.g. `t2iscale.diffusion.graphs.GraphedForward`).
BackboneCall = Callable[..., torch.Tensor]


def guided_prediction(
    backbone: BackboneCall,
    x: torch.Tensor,
    timestep: float,
    context: torch.Tensor,
    mask: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """One backbone call; returns the (guided) prediction for x (B, C, H, W) in float32.

    `context`/`mask` come from `_guidance_context`: 2B rows ([uncond; cond]) when guidance != 1, else B.
    """
    guided = context.shape[0] != x.shape[0]
    x_in = torch.cat([x, x]) if guided else x  # (2B or B, C, H, W)
    timesteps = torch.full((x_in.shape[0],), timestep, device=x.device, dtype=torch.float32)
    prediction = backbone(x_in, timesteps, context, mask).float()
    if not guided:
        return prediction
    uncond, cond = prediction.chunk(2)
    return uncond + guidance * (cond - uncond)


@torch.inference_mode()
def sample(
    backbone: BackboneCall,
    objective: Objective,
    noise: torch.Tensor,
    text_ctx: torch.Tensor,
    text_mask: torch.Tensor,
    uncond_ctx: torch.Tensor | None,
    uncond_mask: torch.Tensor | None,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    progress: bool = False,
    *,
    sampler: str | None = None,
    clip_sample: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Denoise `noise` (B, C, H, W) into x0 of the same shape and dtype.

    text_ctx (B, L, D), text_mask (B, L) bool; uncond_ctx (1 or B, L, D) and uncond_mask (1 or B, L) are the
    empty caption's encoding (may be None when guidance == 1). `sampler` defaults to the objective's.
    `clip_sample` clamps to [-1, 1] (pixel space; DDIM also clamps its x0 estimate each step).
    `autocast_dtype` (e.g. torch.bfloat16) runs the backbone under autocast; the sampler state stays
    float32. Put the backbone in eval mode first; this function does not change module modes.
    """
    if steps < 1:
        raise UserError(f"steps must be at least 1, got {steps}")
    scheduler = make_scheduler(objective, sampler, clip_sample)
    # Timesteps stay on the CPU: reading one per step costs no device synchronisation.
    scheduler.set_timesteps(steps)
    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        scheduler.set_begin_index(0)  # skip the per-step search for the current timestep
    guided = guidance != 1.0
    context, mask = _guidance_context(text_ctx, text_mask, uncond_ctx, uncond_mask, guided)
    autocast = (
        torch.autocast(device_type=noise.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )

    # Both schedulers start from unit-variance noise and feed the backbone x unscaled (DDIM's
    # init_noise_sigma is 1 and its scale_model_input is the identity; flow Euler has neither).
    x = noise.float()  # (B, C, H, W) sampler state, float32
    for timestep in progress_bar(scheduler.timesteps, enabled=progress, desc="sampling", leave=False):
        with autocast:
            prediction = guided_prediction(
                backbone, x.to(noise.dtype), float(timestep), context, mask, guidance
            )
        x = scheduler.step(prediction, timestep, x, return_dict=False)[0]
    if clip_sample:
        x = x.clamp(-1.0, 1.0)
    return x.to(noise.dtype)

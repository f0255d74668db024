"""Diffusion objectives (DDPM ε / v, rectified flow) and samplers (DDIM, flow Euler) with classifier-free
guidance; they wrap any backbone `backbone(x, t, text_ctx, text_mask) -> prediction` (DESIGN.md)."""

from t2iscale.diffusion.noise import initial_noise
from t2iscale.diffusion.objectives import (
    DEFAULT_OBJECTIVE,
    OBJECTIVES,
    DDPMObjective,
    FlowObjective,
    Objective,
    make_objective,
)
from t2iscale.diffusion.sampling import DEFAULT_GUIDANCE, DEFAULT_STEPS, SAMPLERS, make_scheduler, sample

__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_OBJECTIVE",
    "DEFAULT_STEPS",
    "OBJECTIVES",
    "SAMPLERS",
    "DDPMObjective",
    "FlowObjective",
    "Objective",
    "initial_noise",
    "make_objective",
    "make_scheduler",
    "sample",
]

"""Training objectives that wrap any backbone `backbone(x, t, text_ctx, text_mask) -> prediction`.

An objective knows the noise schedule, how to corrupt a clean sample x0, what the backbone must predict and
which sampler inverts it. It never looks at the backbone's family (DESIGN.md, "Backbone ≠ diffusion").

- `ddpm-eps` (the recipe's default): DDPM with the LDM scaled-linear β schedule (0.00085 → 0.012, 1000
  steps) and ε-prediction — the setting the paper trains every backbone in (its controlled SD-style recipe).
- `ddpm-v`: the same schedule with v-prediction, v = √ᾱ·ε − √(1−ᾱ)·x0 (SD2-768 style).
- `flow`: rectified flow, x_σ = (1−σ)·x0 + σ·ε, target velocity ε − x0, the convention of diffusers'
  `FlowMatchEulerDiscreteScheduler` (SD3). σ is drawn logit-normal(0, 1) by default — the density SD3
  (Esser et al., 2024) found best among those it compared; `time_sampling="uniform"` gives σ ~ U(0, 1).
  The backbone sees t = 1000·σ, so every backbone gets timesteps in the same diffusers units.

Timesteps reach the backbone as float32 (B,) in diffusers units; DDPM timesteps are integers in [0, 1000).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_density_for_timestep_sampling
from pydantic import ConfigDict, Field, ValidationError

from t2iscale.errors import UserError
from t2iscale.strict import Strict, validation_problems

DEFAULT_OBJECTIVE = "ddpm-eps"


class StrictConfig(Strict):
    """Unknown keys are errors; configs are values (frozen) so a run's config cannot drift."""

    model_config = ConfigDict(frozen=True)


class DDPMConfig(StrictConfig):
    name: Literal["ddpm-eps", "ddpm-v"] = "ddpm-eps"
    num_train_timesteps: int = Field(1000, ge=2)
    # LDM / SD scaled-linear schedule: β = linspace(√0.00085, √0.012, 1000)² (the paper's recipe).
    beta_start: float = Field(0.00085, gt=0.0, lt=1.0)
    beta_end: float = Field(0.012, gt=0.0, lt=1.0)
    beta_schedule: Literal["scaled_linear", "linear", "squaredcos_cap_v2"] = "scaled_linear"
    # Sampling only. "leading" with steps_offset=1 is what SD1/SD2 pipelines use (50 DDIM steps start at
    # t=981 and end at t=1); "trailing" starts at t=999 (Lin et al., 2024, Table 2).
    timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading"


class FlowConfig(StrictConfig):
    name: Literal["flow"] = "flow"
    # Backbone timestep = num_train_timesteps · σ.
    num_train_timesteps: int = Field(1000, ge=2)
    time_sampling: Literal["logit-normal", "uniform"] = "logit-normal"
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0.0)
    # Sampling only: σ' = shift·σ / (1 + (shift−1)·σ) spends more steps at high noise; SD3 uses 3.0 at
    # 1024 px. 1.0 (no shift) suits the small resolutions this toolkit studies.
    shift: float = Field(1.0, gt=0.0)


class Objective(ABC):
    """What to train a backbone on, and which sampler inverts it."""

    config_class: type[StrictConfig]

    def __init__(self, config: StrictConfig):
        self._config = config

    @property
    def name(self) -> str:
        return self._config.name

    def config(self) -> StrictConfig:
        return self._config

    def as_dict(self) -> dict:
        """JSON-ready; `make_objective(**objective.as_dict())` rebuilds the same objective."""
        return self._config.model_dump(mode="json")

    @abstractmethod
    def sampler_default(self) -> str:
        """Name of the sampler (see `t2iscale.diffusion.sampling.SAMPLERS`) used for evaluation."""

    @abstractmethod
    def draw_noise_and_time(
        self, x0: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (noise like x0 in float32, per-sample time (B,)) from `generator`, on x0's device."""

    @abstractmethod
    def noisy_input_and_target(
        self, x0: torch.Tensor, noise: torch.Tensor, time: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, backbone timesteps (B,) float32, regression target), all computed in float32."""

    def loss(
        self,
        backbone: torch.nn.Module,
        x0: torch.Tensor,
        noise: torch.Tensor,
        time: torch.Tensor,
        text_ctx: torch.Tensor,
        text_mask: torch.Tensor,
    ) -> torch.Tensor:
        """The training loss: mean squared error of the backbone's prediction, a float32 scalar (also under autocast).

        x0 (B, C, H, W) clean inputs; noise (B, C, H, W) and time (B,) from `draw_noise_and_time` (the training
        loop draws them per step from (run seed, step), see `t2iscale.train.sources.StepInputs`); text_ctx
        (B, L, D) and text_mask (B, L) after caption dropout.
        """
        x_t, timesteps, target = self.noisy_input_and_target(x0, noise, time)  # float32
        # The backbone gets x_t in the data's dtype; autocast (if any) decides its compute dtype.
        prediction = backbone(x_t.to(x0.dtype), timesteps, text_ctx, text_mask)  # (B, C, H, W)
        if prediction.shape != x0.shape:
            raise ValueError(
                f"backbone returned shape {tuple(prediction.shape)}, expected the input's {tuple(x0.shape)}"
            )
        return F.mse_loss(prediction.float(), target)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.as_dict().items() if key != "name")
        return f"{type(self).__name__}({self.name!r}, {options})"


def _random_device(x0: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    # Draw where the generator lives (a CPU generator must draw on the CPU), then move to x0's device.
    return generator.device if generator is not None else x0.device


class DDPMObjective(Objective):
    """ε- or v-prediction under a discrete DDPM schedule held by diffusers' `DDPMScheduler`."""

    config_class = DDPMConfig

    def __init__(self, config: DDPMConfig):
        super().__init__(config)
        self.prediction_type = "epsilon" if config.name == "ddpm-eps" else "v_prediction"
        # The training-side schedule; the DDIM sampler is built from this scheduler's config so both share it.
        self.scheduler = DDPMScheduler(
            num_train_timesteps=config.num_train_timesteps,
            beta_start=config.beta_start,
            beta_end=config.beta_end,
            beta_schedule=config.beta_schedule,
            prediction_type=self.prediction_type,
            clip_sample=False,
            timestep_spacing=config.timestep_spacing,
            steps_offset=1,
        )

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t for t = 0 … T−1, float32 (T,)."""
        return self.scheduler.alphas_cumprod

    def sampler_default(self) -> str:
        return "ddim"

    def draw_noise_and_time(self, x0, generator=None):
        device = _random_device(x0, generator)
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=torch.float32)
        batch = x0.shape[0]
        steps = torch.randint(
            0, self._config.num_train_timesteps, (batch,), generator=generator, device=device
        )
        return noise.to(x0.device), steps.to(x0.device)

    def noisy_input_and_target(self, x0, noise, time):
        x0 = x0.float()
        noise = noise.float()
        steps = time.long()
        x_t = self.scheduler.add_noise(x0, noise, steps)
        target = noise if self.prediction_type == "epsilon" else self.scheduler.get_velocity(x0, noise, steps)
        return x_t, steps.float(), target


class FlowObjective(Objective):
    """Rectified flow with a velocity target, sampled by diffusers' `FlowMatchEulerDiscreteScheduler`."""

    config_class = FlowConfig

    def sampler_default(self) -> str:
        return "flow-euler"

    def draw_noise_and_time(self, x0, generator=None):
        config = self._config
        device = _random_device(x0, generator)
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=torch.float32)
        sigmas = compute_density_for_timestep_sampling(
            weighting_scheme="logit_normal" if config.time_sampling == "logit-normal" else "uniform",
            batch_size=x0.shape[0],
            logit_mean=config.logit_mean,
            logit_std=config.logit_std,
            device=device,
            generator=generator,
        )
        return noise.to(x0.device), sigmas.to(x0.device)

    def noisy_input_and_target(self, x0, noise, time):
        x0 = x0.float()
        noise = noise.float()
        sigma = time.float().view(-1, *([1] * (x0.dim() - 1)))  # (B, 1, 1, 1)
        # The scheduler's interpolation (`scale_noise`) only accepts timesteps of its inference grid, so the
        # continuous-time version is written out: x_σ = (1−σ)·x0 + σ·ε, velocity dx/dσ = ε − x0.
        x_t = (1.0 - sigma) * x0 + sigma * noise
        target = noise - x0
        return x_t, time.float() * self._config.num_train_timesteps, target


OBJECTIVES: dict[str, type[Objective]] = {
    "ddpm-eps": DDPMObjective,
    "ddpm-v": DDPMObjective,
    "flow": FlowObjective,
}


def _describe_validation_error(name: str, error: ValidationError) -> str:
    problems = [
        f"unknown option {problem.key!r}"
        if problem.unknown
        else f"option {problem.key or '<config>'!r}: {problem.message} (got {problem.input!r})"
        for problem in validation_problems(error)
    ]
    return f"objective {name!r}: " + "; ".join(problems)


def make_objective(name: str = DEFAULT_OBJECTIVE, **options) -> Objective:
    """Build an objective by name ("ddpm-eps", "ddpm-v", "flow"); options are its config's fields."""
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}")
    objective_class = OBJECTIVES[name]
    try:
        config = objective_class.config_class(name=name, **options)
    except ValidationError as error:
        valid = ", ".join(key for key in objective_class.config_class.model_fields if key != "name")
        raise UserError(f"{_describe_validation_error(name, error)}; valid options: {valid}") from None
    return objective_class(config)

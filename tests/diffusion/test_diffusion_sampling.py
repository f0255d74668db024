import pytest
import torch
from torch import nn

from t2iscale.diffusion import initial_noise, make_objective, make_scheduler, sample
from t2iscale.errors import UserError


def _clean_images(batch=2):
    return torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1


def test_ddim_scheduler_has_the_ldm_settings():
    scheduler = make_scheduler(make_objective("ddpm-eps"))
    config = scheduler.config
    assert type(scheduler).__name__ == "DDIMScheduler"
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert config.num_train_timesteps == 1000
    assert config.set_alpha_to_one is False and config.steps_offset == 1
    assert config.timestep_spacing == "leading"
    assert config.prediction_type == "epsilon"
    assert config.clip_sample is False
    scheduler.set_timesteps(50)
    assert scheduler.timesteps.tolist() == list(range(981, 0, -20))
    torch.testing.assert_close(scheduler.final_alpha_cumprod, torch.tensor(1 - 0.00085))
    assert make_scheduler(make_objective("ddpm-v")).config.prediction_type == "v_prediction"
    assert make_scheduler(make_objective(), clip_sample=True).config.clip_sample is True
    trailing = make_scheduler(make_objective(timestep_spacing="trailing"))
    trailing.set_timesteps(50)
    assert trailing.timesteps[0] == 999


def test_flow_scheduler_follows_the_objective():
    scheduler = make_scheduler(make_objective("flow", shift=3.0))
    assert type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert scheduler.config.shift == 3.0


def test_sampler_must_match_the_objective():
    with pytest.raises(UserError, match="unknown sampler 'euler-a'"):
        make_scheduler(make_objective(), "euler-a")
    with pytest.raises(UserError, match="does not invert objective 'flow'"):
        make_scheduler(make_objective("flow"), "ddim")
    with pytest.raises(UserError, match="does not invert objective 'ddpm-v'"):
        make_scheduler(make_objective("ddpm-v"), "flow-euler")


@pytest.mark.parametrize("name", ["ddpm-eps", "ddpm-v"])
@pytest.mark.parametrize("steps", [50, 10])
def test_ddim_with_an_oracle_recovers_x0(name, steps, oracle_backbone, text_batch):
    objective = make_objective(name)
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch
    x0 = _clean_images()
    noise = initial_noise([0, 1], (3, 8, 8))
    result = sample(
        oracle_backbone(objective, x0),
        objective,
        noise,
        text_ctx,
        text_mask,
        uncond_ctx,
        uncond_mask,
        steps=steps,
    )
    # eta = 0 keeps the oracle's ε fixed along the path; the last step lands on ᾱ_0 = 1 − β_0 (LDM's
    # set_alpha_to_one=False), i.e. x0 plus √β_0 ≈ 0.03 of that ε.
    alpha_bar = objective.alphas_cumprod.double()
    first_t = 1000 // steps * (steps - 1) + 1
    eps = (noise.double() - alpha_bar[first_t].sqrt() * x0) / (1 - alpha_bar[first_t]).sqrt()
    expected = alpha_bar[0].sqrt() * x0 + (1 - alpha_bar[0]).sqrt() * eps
    torch.testing.assert_close(result.double(), expected, atol=1e-4, rtol=1e-4)
    assert (result - x0).pow(2).mean() < 2e-3


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_euler_with_an_oracle_recovers_x0(shift, oracle_backbone, text_batch):
    objective = make_objective("flow", shift=shift)
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch
    x0 = _clean_images()
    noise = initial_noise([0, 1], (3, 8, 8))
    result = sample(
        oracle_backbone(objective, x0),
        objective,
        noise,
        text_ctx,
        text_mask,
        uncond_ctx,
        uncond_mask,
        steps=20,
    )
    torch.testing.assert_close(result, x0, atol=1e-4, rtol=1e-4)


class ContextDependent(nn.Module):
    """Output depends on x, t and the masked context, so cond and uncond predictions differ."""

    def forward(self, x, t, text_ctx, text_mask):
        pooled = (text_ctx * text_mask.unsqueeze(-1)).sum(1)  # (B, D)
        return 0.5 * x + pooled[:, :3, None, None] * (1 + t.view(-1, 1, 1, 1) / 1000)


class GuidedByHand(nn.Module):
    """uncond + g·(cond − uncond), computed with two separate calls of the inner backbone."""

    def __init__(self, inner, uncond_ctx, uncond_mask, guidance):
        super().__init__()
        self.inner, self.uncond_ctx, self.uncond_mask, self.guidance = (
            inner,
            uncond_ctx,
            uncond_mask,
            guidance,
        )

    def forward(self, x, t, text_ctx, text_mask):
        batch = x.shape[0]
        uncond = self.inner(x, t, self.uncond_ctx.expand(batch, -1, -1), self.uncond_mask.expand(batch, -1))
        cond = self.inner(x, t, text_ctx, text_mask)
        return uncond + self.guidance * (cond - uncond)


@pytest.mark.parametrize("name", ["ddpm-eps", "ddpm-v", "flow"])
def test_guidance_combines_uncond_and_cond(name, recording_backbone, text_batch):
    objective = make_objective(name)
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch
    noise = initial_noise([3, 4], (3, 8, 8))
    backbone = recording_backbone(ContextDependent())
    guided = sample(
        backbone, objective, noise, text_ctx, text_mask, uncond_ctx, uncond_mask, steps=8, guidance=4.0
    )
    by_hand = GuidedByHand(ContextDependent(), uncond_ctx, uncond_mask, 4.0)
    expected = sample(by_hand, objective, noise, text_ctx, text_mask, None, None, steps=8, guidance=1.0)
    torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-5)
    unguided = sample(
        ContextDependent(), objective, noise, text_ctx, text_mask, None, None, steps=8, guidance=1.0
    )
    assert not torch.allclose(guided, unguided, atol=1e-3)
    # One backbone call of 2B rows per step: [uncond; cond], each half with its own mask.
    assert len(backbone.calls) == 8
    for call in backbone.calls:
        assert call["x"].shape == (4, 3, 8, 8)
        assert torch.equal(call["x"][:2], call["x"][2:])
        assert torch.equal(call["mask"], torch.cat([uncond_mask.expand(2, -1), text_mask]))
        assert torch.equal(call["ctx"][2:], text_ctx)
        assert call["t"].shape == (4,) and call["t"].dtype == torch.float32


def test_guidance_one_skips_the_uncond_half(recording_backbone, text_batch):
    text_ctx, text_mask, _, _ = text_batch
    backbone = recording_backbone(ContextDependent())
    sample(
        backbone,
        make_objective(),
        initial_noise([0, 1], (3, 4, 4)),
        text_ctx,
        text_mask,
        None,
        None,
        steps=5,
        guidance=1.0,
    )
    assert [call["x"].shape[0] for call in backbone.calls] == [2] * 5
    assert [call["t"][0].item() for call in backbone.calls] == [801.0, 601.0, 401.0, 201.0, 1.0]


def test_guidance_needs_the_uncond_context(text_batch):
    text_ctx, text_mask, _, _ = text_batch
    with pytest.raises(ValueError, match="uncond_ctx"):
        sample(
            ContextDependent(),
            make_objective(),
            initial_noise([0, 1], (3, 4, 4)),
            text_ctx,
            text_mask,
            None,
            None,
            steps=2,
        )


@pytest.mark.parametrize("name", ["ddpm-eps", "flow"])
def test_shapes_dtypes_and_determinism(name, tiny_backbone, text_batch):
    objective = make_objective(name)
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch
    noise = initial_noise([10, 11], (3, 8, 8))
    args = (tiny_backbone, objective, noise, text_ctx, text_mask, uncond_ctx, uncond_mask)
    first = sample(*args, steps=4)
    assert first.shape == noise.shape and first.dtype == torch.float32
    assert torch.isfinite(first).all()
    assert torch.equal(first, sample(*args, steps=4))
    # Batch of one: the same seed and prompt give the same image as inside the batch of two.
    alone = sample(
        tiny_backbone,
        objective,
        initial_noise([11], (3, 8, 8)),
        text_ctx[1:],
        text_mask[1:],
        uncond_ctx,
        uncond_mask,
        steps=4,
    )
    torch.testing.assert_close(alone[0], first[1], atol=1e-5, rtol=1e-5)
    half = sample(*args, steps=4, autocast_dtype=torch.bfloat16)
    assert half.dtype == torch.float32 and half.shape == noise.shape
    assert (half - first).abs().max() < 0.1


def test_clip_sample_bounds_the_output(text_batch):
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch

    class Wild(nn.Module):
        def forward(self, x, t, text_ctx, text_mask):
            return 50 * torch.ones_like(x)

    noise = initial_noise([0, 1], (3, 4, 4))
    for name in ("ddpm-eps", "flow"):
        args = (Wild(), make_objective(name), noise, text_ctx, text_mask, uncond_ctx, uncond_mask)
        assert sample(*args, steps=5).abs().max() > 1.5
        clipped = sample(*args, steps=5, clip_sample=True)
        assert clipped.abs().max() <= 1.0


def test_bad_step_count_is_a_user_error(tiny_backbone, text_batch):
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch
    with pytest.raises(UserError, match="steps"):
        sample(
            tiny_backbone,
            make_objective(),
            initial_noise([0, 1], (3, 4, 4)),
            text_ctx,
            text_mask,
            uncond_ctx,
            uncond_mask,
            steps=0,
        )


def test_uncond_context_must_match_the_text_context(text_batch):
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch
    with pytest.raises(ValueError, match="must match the text context"):
        sample(
            ContextDependent(),
            make_objective(),
            initial_noise([0, 1], (3, 4, 4)),
            text_ctx,
            text_mask,
            uncond_ctx[:, :3],
            uncond_mask[:, :3],
            steps=2,
        )
    # A per-sample uncond batch (B, L, D) is accepted as well as one shared row (1, L, D).
    per_sample = sample(
        ContextDependent(),
        make_objective(),
        initial_noise([0, 1], (3, 4, 4)),
        text_ctx,
        text_mask,
        uncond_ctx.expand(2, -1, -1),
        uncond_mask.expand(2, -1),
        steps=2,
    )
    shared = sample(
        ContextDependent(),
        make_objective(),
        initial_noise([0, 1], (3, 4, 4)),
        text_ctx,
        text_mask,
        uncond_ctx,
        uncond_mask,
        steps=2,
    )
    assert torch.equal(per_sample, shared)

"""GraphedForward: what the sampler calls instead of the backbone. The CUDA replay itself needs a GPU
(`scripts/gpu_check.py` compares it with eager sampling there); on the CPU it must be the backbone, unchanged."""

import torch

from t2iscale.diffusion import initial_noise, make_objective, sample
from t2iscale.diffusion.graphs import GraphedForward, _signature


def test_on_the_cpu_it_is_the_backbone(tiny_backbone, text_batch):
    text_ctx, text_mask, uncond_ctx, uncond_mask = text_batch
    forward = GraphedForward(tiny_backbone)
    x = torch.randn(2, 3, 8, 8)
    t = torch.tensor([10.0, 900.0])
    torch.testing.assert_close(forward(x, t, text_ctx, text_mask), tiny_backbone(x, t, text_ctx, text_mask))
    objective = make_objective("ddpm-eps")
    noise = initial_noise([3, 4], (3, 8, 8))
    args = (objective, noise, text_ctx, text_mask, uncond_ctx, uncond_mask)
    assert torch.equal(sample(forward, *args, steps=3), sample(tiny_backbone, *args, steps=3))
    assert forward.graphs == {} and forward.captured == 0  # nothing captured off CUDA


def test_a_graph_is_kept_per_input_signature():
    """Replaying a graph with inputs of another shape, dtype or autocast state would be wrong: each is its own key."""
    device = torch.device("cpu")
    x, t = torch.zeros(2, 3, 8, 8), torch.zeros(2)
    ctx, mask = torch.zeros(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    base = _signature((x, t, ctx, mask), device)
    assert base == _signature((x.clone(), t.clone(), ctx.clone(), mask.clone()), device)
    assert base != _signature((torch.zeros(4, 3, 8, 8), t, ctx, mask), device)
    assert base != _signature((x, t, ctx.half(), mask), device)
    assert base != _signature((x, t, ctx, None), device)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert base != _signature((x, t, ctx, mask), device)


def test_capture_runs_autocast_without_its_weight_cache():
    from t2iscale.diffusion.graphs import _uncached_autocast

    with _uncached_autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")  # no autocast: nothing to change
    with torch.autocast("cpu", dtype=torch.bfloat16), _uncached_autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert not torch.is_autocast_cache_enabled()


def test_a_backbone_with_compiled_regions_runs_without_graphs():
    """A training run's compiled backbone, evaluated along training, is called as is."""
    from t2iscale.diffusion.graphs import has_compiled_regions
    from t2iscale.train.compile import compile_backbone
    from t2iscale.zoo.backbone import build
    from t2iscale.zoo.setting import Setting

    backbone = build(
        "sdxl-c8-td1_1", Setting(resolution=16, latent_factor=1, in_channels=3, text_dim=16, text_len=8)
    )
    assert not has_compiled_regions(backbone) and GraphedForward(backbone).enabled
    compile_backbone(backbone, "regional", backend="aot_eager")
    assert has_compiled_regions(backbone) and not GraphedForward(backbone).enabled

"""Regional and full compilation wrap the right modules and compute the same function (dynamo traces every block).

`aot_eager` runs the real graph capture and autograd tracing without generating kernels, so this stays fast on CPU;
the speed of inductor kernels is a GPU benchmark's business (`t2iscale bench --compile`).
"""

import pytest
import torch

from t2iscale.train.compile import REPEATED_BLOCKS, compile_backbone, repeated_blocks
from t2iscale.train.config import RecipeConfig
from t2iscale.zoo.backbone import build
from t2iscale.zoo.setting import Setting

SETTING = Setting(resolution=16, latent_factor=1, in_channels=3, text_dim=16, text_len=8)


def _inputs():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=generator)
    t = torch.tensor([10.0, 700.0])
    ctx = torch.randn(2, 8, 16, generator=generator)
    mask = torch.ones(2, 8, dtype=torch.bool)
    return x, t, ctx, mask


@pytest.mark.parametrize("name", ["sdxl-c8-td1_1", "pixart-h32-d2"])
def test_regional_compile_wraps_each_repeated_block_and_keeps_the_function(name):
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = build(name, SETTING)
    compiled = build(name, SETTING)
    compiled.load_state_dict(eager.state_dict())
    blocks = repeated_blocks(compiled.model)
    assert blocks and {type(block).__name__ for block in blocks} <= set(REPEATED_BLOCKS)
    assert compile_backbone(compiled, "regional", backend="aot_eager") == len(blocks)
    assert all(block._compiled_call_impl is not None for block in blocks)

    inputs = _inputs()
    expected = eager(*inputs)
    actual = compiled(*inputs)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    actual.square().mean().backward()  # gradients flow through the compiled blocks
    assert all(p.grad is not None for p in compiled.parameters() if p.requires_grad)


def test_full_compile_and_off():
    torch._dynamo.reset()
    backbone = build("sdxl-c8-td1_1", SETTING)
    assert compile_backbone(backbone, "off") == 0 and backbone.model._compiled_call_impl is None
    assert compile_backbone(backbone, "full", backend="aot_eager") == 1
    assert backbone(*_inputs()).shape == (2, 3, 16, 16)


def test_recipe_reads_booleans_as_compile_modes():
    assert RecipeConfig(compile=True).compile == "full"
    assert RecipeConfig(compile=False).compile == "off"
    assert RecipeConfig(compile="regional").compile == "regional"


def test_auto_is_regional_on_cuda_for_large_backbones_only():
    from t2iscale.train.compile import AUTO_COMPILE_MIN_PARAMS, resolve_compile

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert RecipeConfig().compile == "auto"
    assert resolve_compile("auto", cuda, AUTO_COMPILE_MIN_PARAMS) == "regional"
    assert resolve_compile("auto", cuda, AUTO_COMPILE_MIN_PARAMS - 1) == "off"
    assert resolve_compile("auto", cpu, 10**10) == "off"
    assert resolve_compile("full", cpu, 10) == "full"
    backbone = build("sdxl-c8-td1_1", SETTING)
    assert compile_backbone(backbone, "auto") == 0  # a CPU backbone stays eager
    assert not any(block._compiled_call_impl is not None for block in repeated_blocks(backbone.model))


def test_eager_regions_switches_compiled_blocks_off_and_back_on():
    from t2iscale.diffusion.graphs import has_compiled_regions
    from t2iscale.train.compile import eager_regions

    torch._dynamo.reset()
    backbone = build("sdxl-c8-td1_1", SETTING)
    compile_backbone(backbone, "regional", backend="aot_eager")
    calls = {block: block._compiled_call_impl for block in repeated_blocks(backbone.model)}
    with eager_regions(backbone) as same:
        assert same is backbone and not has_compiled_regions(backbone)
        with torch.no_grad():
            assert backbone(*_inputs()).shape == (2, 3, 16, 16)
    assert has_compiled_regions(backbone)
    assert all(block._compiled_call_impl is call for block, call in calls.items())
    with pytest.raises(RuntimeError), eager_regions(backbone):  # restored on errors too
        raise RuntimeError("boom")
    assert all(block._compiled_call_impl is call for block, call in calls.items())


def test_regional_transformer_compiles_only_the_transformer_blocks():
    from t2iscale.train.compile import TRANSFORMER_BLOCKS

    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = build("sdxl-c8-td1_1", SETTING)
    compiled = build("sdxl-c8-td1_1", SETTING)
    compiled.load_state_dict(eager.state_dict())
    transformer_blocks = repeated_blocks(compiled.model, TRANSFORMER_BLOCKS)
    assert compile_backbone(compiled, "regional-transformer", backend="aot_eager") == len(transformer_blocks)
    wrapped = {type(m).__name__ for m in compiled.model.modules() if m._compiled_call_impl is not None}
    assert wrapped == {"BasicTransformerBlock"}  # the ResNet blocks stay eager
    inputs = _inputs()
    torch.testing.assert_close(compiled(*inputs), eager(*inputs), rtol=1e-4, atol=1e-5)

"""Analytic accounting against the instantiated models: numel for parameters, FlopCounterMode for compute."""

import subprocess
import sys

import diffusers
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from t2iscale.zoo import FAMILIES, PAPER_SETTING, Setting, account, build, list_names
from t2iscale.zoo.accounting import count_config
from t2iscale.zoo.backbone import PixArtBackbone
from t2iscale.zoo.families import pixart_transformer, sd2_unet, sdxl_unet

SHAPES_SETTING = Setting(resolution=32, latent_factor=1, in_channels=3, text_dim=64, text_len=16)
TINY_SETTING = Setting(resolution=16, latent_factor=1, in_channels=3, text_dim=32, text_len=8)
# 20 px: the 4-level UNets see 20, 10, 5, 3 — odd sides exercise the ceil of the stride-2 convs.
ODD_SETTING = Setting(resolution=20, latent_factor=1, in_channels=3, text_dim=32, text_len=6)

# The public release configs, counted by loading them in diffusers (paper Sec. 3 lists the same sizes).
RELEASE_PARAMS = {"sd15-release": 859_520_964, "sd2-release": 865_910_724, "sdxl-release": 2_567_463_684}

PARAMETRIC_SAMPLE = [
    "sdxl-c16-td1_2",
    "sdxl-c96-td3_1",
    "sd2-c32",
    "sd2-c48",
    "if-xl-c64",
    "if-xl-c16",
    "pixart-h128-d4",
    "pixart-h48-d1",
    "mmdit-d2",
    "mmdit-d1",
]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Tiny models on a shared 2-core box: more threads only add contention (a 50 ms forward takes seconds).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def numel(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize("name", list_names())
def test_params_of_named_entries_match_the_model_built_on_meta(name):
    backbone = build(name, device="meta")
    assert all(parameter.is_meta for parameter in backbone.parameters())
    assert numel(backbone.model) == account(name).params


@pytest.mark.parametrize("name", PARAMETRIC_SAMPLE)
@pytest.mark.parametrize("setting", [PAPER_SETTING, SHAPES_SETTING], ids=["paper", "shapes"])
def test_params_of_parametric_members_match_the_model(name, setting):
    assert numel(build(name, setting, device="meta").model) == account(name, setting).params


@pytest.mark.parametrize("name, params", RELEASE_PARAMS.items())
def test_release_parity_counts_are_exact(name, params):
    assert account(name).params == params
    assert account(name, SHAPES_SETTING).params == params  # the release fixes its own context width


# diffusers modules that hold an attention's projections (and nothing else that multiplies).
ATTENTION_MODULES = ("Attention", "AttentionPooling")


def _counted_flops(root: torch.nn.Module, forward) -> tuple[int, int, int]:
    """(all FLOPs, attention-matmul FLOPs, attention-projection FLOPs) of `forward()` as torch counts them.

    On CPU, FlopCounterMode has no formula for the fused SDPA kernel, so attention would count as zero; the math
    backend runs QK^T and AV as bmm, which it counts at 2 FLOPs per MAC. Nothing else in these models uses bmm.
    The projections are the other FLOPs inside `root`'s attention modules (the counter keys them by module path).
    """
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        forward()
    counts = counter.get_flop_counts()
    attention = sum(flops for op, flops in counts["Global"].items() if str(op) == "aten.bmm")
    modules = dict(root.named_modules())
    projections = 0
    for path, module_counts in counts.items():
        module = modules.get(path.partition(".")[2]) if "." in path else None
        if type(module).__name__ in ATTENTION_MODULES:
            projections += sum(flops for op, flops in module_counts.items() if str(op) != "aten.bmm")
    return counter.get_total_flops(), attention, projections


def _inputs(setting: Setting, batch: int = 2, device: str = "cpu"):
    generator = torch.Generator().manual_seed(0)
    side = setting.sample_size
    x = torch.randn(batch, setting.in_channels, side, side, generator=generator)
    t = torch.tensor([3.0, 871.5][:batch])
    text_ctx = torch.randn(batch, setting.text_len, setting.text_dim, generator=generator)
    text_mask = torch.ones(batch, setting.text_len, dtype=torch.bool)
    text_mask[0, setting.text_len // 2 :] = False
    return tuple(tensor.to(device) for tensor in (x, t, text_ctx, text_mask))


def _assert_close(counted: int, analytic: int) -> None:
    assert analytic > 0
    assert abs(counted - analytic) <= 0.01 * analytic, (counted, analytic)


FLOP_CASES = [(FAMILIES[family].tiny, TINY_SETTING) for family in sorted(FAMILIES)] + [
    ("sd2-c16", ODD_SETTING),
    ("pixart-h32-d1", Setting(resolution=20, latent_factor=2, in_channels=4, text_dim=24, text_len=5)),
    # IF layout: a 16-token caption on a level of 4 x 4 = 16 tokens, and a text too narrow for IF's text group norm
    ("if-xl-c16", Setting(resolution=16, latent_factor=1, in_channels=3, text_dim=16, text_len=16)),
]


@pytest.mark.parametrize("name, setting", FLOP_CASES, ids=[f"{n}-{s.resolution}px" for n, s in FLOP_CASES])
def test_forward_flops_match_flop_counter(name, setting):
    backbone = build(name, setting).eval()
    batch = 2
    inputs = _inputs(backbone.setting, batch)
    total, attention, projections = _counted_flops(backbone, lambda: backbone(*inputs))
    expected = account(name, setting)
    # Analytic numbers are for batch 1; both sides count 2 FLOPs per multiply-accumulate.
    _assert_close(attention, batch * 2 * expected.macs_attn)
    _assert_close(total - attention, batch * 2 * expected.macs)
    _assert_close(projections, batch * 2 * expected.macs_attn_proj)
    _assert_close(total, batch * 1e9 * expected.fwd_gflops)


def test_release_only_options_are_counted_too():
    """Options only the *-release entries use (SD1.5 conv projections and fixed heads, SDXL add-embedding,
    PixArt size conditions and learned variance) checked at tiny width, where the models are cheap to run."""
    setting = TINY_SETTING
    x, t, text_ctx, text_mask = _inputs(setting)

    sd15_like = sd2_unet(setting, channels=32, heads_per_level=8, linear_projection=False)
    sdxl_like = sdxl_unet(setting, channels=16, td_a=1, td_b=2, add_embedding=True)
    for config in (sd15_like, sdxl_like):
        kwargs = {key: value for key, value in config.items() if key != "_class_name"}
        unet = diffusers.UNet2DConditionModel(**kwargs).eval()
        expected = count_config(config, setting.text_len)
        assert numel(unet) == expected.params
        added = {"text_embeds": torch.randn(2, 1280), "time_ids": torch.randn(2, 6)}
        added = added if config.get("addition_embed_type") else None
        total, attention, projections = _counted_flops(
            unet,
            lambda unet=unet, added=added: unet(
                x, t, text_ctx, encoder_attention_mask=text_mask, added_cond_kwargs=added
            ),
        )
        _assert_close(attention, 2 * 2 * expected.macs_attn)
        _assert_close(total - attention, 2 * 2 * expected.macs)
        _assert_close(projections, 2 * 2 * expected.macs_attn_proj)

    setting = Setting(resolution=16, latent_factor=2, in_channels=4, text_dim=40, text_len=8)
    x, t, text_ctx, text_mask = _inputs(setting)
    config = pixart_transformer(setting, hidden=48, depth=2, out_channels=8, additional_conditions=True)
    model = diffusers.PixArtTransformer2DModel(
        **{k: v for k, v in config.items() if k != "_class_name"}
    ).eval()
    backbone = PixArtBackbone("pixart-alpha-xl2-release", "pixart", setting, model)
    expected = count_config(config, setting.text_len)
    assert numel(model) == expected.params
    total, attention, projections = _counted_flops(backbone, lambda: backbone(x, t, text_ctx, text_mask))
    _assert_close(attention, 2 * 2 * expected.macs_attn)
    _assert_close(total - attention, 2 * 2 * expected.macs)
    _assert_close(projections, 2 * 2 * expected.macs_attn_proj)


# DeepFloyd IF-I-XL's released UNet (DeepFloyd/IF-I-XL-v1.0, unet/config.json): 64 px pixels, T5-XXL context
# (4096-d) projected to 2816 channels, learned variance. Its public size is 4.3B parameters.
RELEASED_IF_I_XL = {
    "_class_name": "UNet2DConditionModel",
    "sample_size": 64,
    "in_channels": 3,
    "out_channels": 6,
    "down_block_types": ["ResnetDownsampleBlock2D"] + ["SimpleCrossAttnDownBlock2D"] * 3,
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "up_block_types": ["SimpleCrossAttnUpBlock2D"] * 3 + ["ResnetUpsampleBlock2D"],
    "block_out_channels": [704, 1408, 2112, 2816],
    "layers_per_block": 3,
    "attention_head_dim": 64,
    "cross_attention_dim": 2816,
    "cross_attention_norm": "group_norm",
    "encoder_hid_dim": 4096,
    "encoder_hid_dim_type": "text_proj",
    "addition_embed_type": "text",
    "addition_embed_type_num_heads": 64,
    "resnet_time_scale_shift": "scale_shift",
    "act_fn": "gelu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
}


def _meta_model(config):
    with torch.device("meta"):
        return diffusers.UNet2DConditionModel(**{k: v for k, v in config.items() if k != "_class_name"})


def test_released_if_i_xl_is_counted_exactly():
    """The IF counter on the release itself (its attention at the 2x/4x/8x levels, a text width other than the
    cross-attention width, learned variance): parameters exact, compute as torch counts it (meta device)."""
    unet = _meta_model(RELEASED_IF_I_XL).eval()
    expected = count_config(RELEASED_IF_I_XL, text_len=77)
    assert numel(unet) == expected.params == 4_304_695_110
    x, t = torch.zeros(1, 3, 64, 64, device="meta"), torch.zeros(1, device="meta")
    text = torch.zeros(1, 77, 4096, device="meta")
    total, attention, projections = _counted_flops(unet, lambda: unet(x, t, text))
    _assert_close(attention, 2 * expected.macs_attn)
    _assert_close(total - attention, 2 * expected.macs)
    _assert_close(projections, 2 * expected.macs_attn_proj)


# Paper Table 1 (Li et al., CVPR 2024): DeepFloyd IF-XL's UNet in the common setting (256 px, 4 x 32 x 32 latents,
# 77 x 1024 context) at the paper's C=512 and the released C=704: params, GMACs, attention GMACs.
PAPER_IF_ROWS = {"if-xl-c512": (2.04e9, 194, 23), "if-xl": (3.83e9, 364, 42)}


@pytest.mark.parametrize("name", PAPER_IF_ROWS)
def test_if_xl_reproduces_the_paper_table_1_row(name):
    params, gmacs, gmacs_attention = PAPER_IF_ROWS[name]
    row = account(name)
    assert row.params == pytest.approx(params, rel=0.01)
    assert row.gmacs == pytest.approx(gmacs, rel=0.01)
    # The paper's attention column grows with C^2 (23 -> 42): the attention layers' projections, not the
    # QK^T / AV matmuls (9.5 -> 13.1 GMACs here, linear in C). Counted with the mid-block, as every t2iscale count;
    # without it (0.59 / 0.95 GMACs) the row is still within 2.
    assert abs(row.gmacs_attn_proj - gmacs_attention) <= 2
    # the same row measured on the model itself: numel, and torch's FLOP counter on the meta device
    backbone = build(name, device="meta").eval()
    assert numel(backbone.model) == row.params
    inputs = _inputs(backbone.setting, batch=1, device="meta")
    total, attention, projections = _counted_flops(backbone, lambda: backbone(*inputs))
    assert (total - attention) / 2e9 == pytest.approx(gmacs, rel=0.01)
    assert abs(projections / 2e9 - gmacs_attention) <= 2


def test_paper_efficient_unet_claim():
    """Paper abstract and Sec. 4.2: the efficient UNet (SDXL with TD 4/4) is 45% smaller and needs 28% less
    inference compute than SDXL's UNet in the controlled setting (256 px, 4x32x32 latents, OpenCLIP-H context).
    Compared here: our analytic params and conv+linear GMACs (the paper's Table 1 convention)."""
    sdxl, efficient = account("sdxl"), account("sdxl-td4_4")
    params_saved = 1 - efficient.params / sdxl.params
    gmacs_saved = 1 - efficient.gmacs / sdxl.gmacs
    assert params_saved == pytest.approx(0.45, abs=0.01)
    assert gmacs_saved == pytest.approx(0.28, abs=0.01)


def test_paper_setting_sizes_are_plausible():
    # SD2's UNet in the paper setting is the released one; SDXL's drops the add-embedding and the 2048-d context.
    assert account("sd2").params == RELEASE_PARAMS["sd2-release"]
    assert 2.3e9 < account("sdxl").params < account("sdxl-release").params
    # 4x the pixels: just under 4x the conv/linear MACs (text projections and time MLPs do not grow),
    # more than 4x the attention (self-attention is quadratic in the tokens)
    base, sdxl_512 = account("sdxl"), account("sdxl", Setting(resolution=512))
    assert 3.8 * base.gmacs < sdxl_512.gmacs < 4 * base.gmacs
    assert sdxl_512.gmacs_attn > 4 * base.gmacs_attn


def test_derived_compute_follows_the_paper_rules():
    row = account("pixart-h1152-d28").as_dict()
    assert row["fwd_gflops"] == pytest.approx(2 * (row["gmacs"] + row["gmacs_attn"]))
    assert row["train_gflops_per_image"] == pytest.approx(3 * row["fwd_gflops"])
    assert row["setting"] == PAPER_SETTING.to_dict()
    assert row["params"] == account("pixart-h1152-d28").params


def test_accounting_imports_neither_torch_nor_diffusers():
    code = (
        "import sys; from t2iscale.zoo import account, list_names\n"
        "[account(name) for name in list_names()]\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""The common backbone signature, text masks, save/load, compile and autocast, on each family's tiny member."""

import json

import diffusers
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnAddedKVProcessor2_0

from t2iscale.errors import UserError
from t2iscale.zoo import FAMILIES, Backbone, Setting, build, load_backbone
from t2iscale.zoo.backbone import AddedKVAttnProcessor

SETTING = Setting(resolution=16, latent_factor=1, in_channels=3, text_dim=32, text_len=8)
TINY = [FAMILIES[family].tiny for family in sorted(FAMILIES)]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_inputs(setting: Setting = SETTING, batch: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    side = setting.sample_size
    x = torch.randn(batch, setting.in_channels, side, side, generator=generator)  # (B, C, H, W)
    t = torch.tensor([12.0, 987.25][:batch])  # (B,) diffusers units
    text_ctx = torch.randn(batch, setting.text_len, setting.text_dim, generator=generator)  # (B, L, D)
    text_mask = torch.ones(batch, setting.text_len, dtype=torch.bool)  # (B, L)
    text_mask[:, 5:] = False  # the last three tokens are padding
    return x, t, text_ctx, text_mask


def tiny_backbone(name: str, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    backbone = build(name, SETTING).eval()
    # diffusers zero-initialises output layers of some models (PixArt/SD3 adaLN-zero): give every weight a value so
    # the tests below see the inputs propagate.
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return backbone


@pytest.mark.parametrize("name", TINY)
def test_one_signature_for_every_family(name):
    backbone = tiny_backbone(name)
    assert backbone.name == name and backbone.family in FAMILIES and backbone.setting == SETTING
    assert isinstance(backbone.model, getattr(diffusers, FAMILIES[backbone.family].model_class))
    x, t, text_ctx, text_mask = make_inputs()
    with torch.no_grad():
        out = backbone(x, t, text_ctx, text_mask)
        unmasked = backbone(x, t, text_ctx, None)
        other_text = backbone(x, t, torch.randn_like(text_ctx), text_mask)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, other_text)  # the prediction depends on the text
    assert unmasked.shape == x.shape


@pytest.mark.parametrize("name", TINY)
def test_padded_tokens_are_ignored_where_the_model_takes_a_mask(name):
    backbone = tiny_backbone(name)
    x, t, text_ctx, text_mask = make_inputs()
    changed_padding = text_ctx.clone()
    changed_padding[:, 5:] = 100 * torch.randn_like(changed_padding[:, 5:])
    with torch.no_grad():
        out = backbone(x, t, text_ctx, text_mask)
        out_padding = backbone(x, t, changed_padding, text_mask)
    if backbone.honors_text_mask:
        torch.testing.assert_close(out_padding, out, rtol=1e-4, atol=1e-5)
    else:  # UNets get no mask (as stock pipelines call them); MMDiT masks only its pooled input (documented)
        assert not torch.allclose(out_padding, out)


@pytest.mark.parametrize("name", TINY)
def test_save_and_load_round_trip(name, tmp_path):
    backbone = tiny_backbone(name)
    backbone.save_pretrained(tmp_path)
    metadata = json.loads((tmp_path / "t2iscale.json").read_text())
    assert metadata == {"name": name, "family": backbone.family, "setting": SETTING.to_dict()}
    loaded = load_backbone(tmp_path)
    assert (loaded.name, loaded.family, loaded.setting, type(loaded)) == (
        name,
        backbone.family,
        SETTING,
        type(backbone),
    )
    inputs = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs), backbone(*inputs))
    # the directory is a plain diffusers model directory too
    model_class = getattr(diffusers, FAMILIES[backbone.family].model_class)
    plain = model_class.from_pretrained(tmp_path)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in backbone.parameters())


def test_if_attention_is_diffusers_with_the_text_mask_extended_in_every_case(tmp_path):
    """IF's attention (image queries; keys/values of the text, then of the image tokens): the same numbers as
    diffusers' processor, and a caption as long as a level has tokens, which diffusers cannot mask (it extends the
    text mask over the image keys only when the two lengths differ)."""
    torch.manual_seed(0)
    attn = Attention(
        query_dim=32, cross_attention_dim=32, heads=2, dim_head=16, added_kv_proj_dim=24, norm_num_groups=8,
        bias=True, upcast_softmax=True, processor=AttnAddedKVProcessor2_0(),
    ).eval()  # fmt: skip
    ours = AddedKVAttnProcessor()
    image = torch.randn(2, 32, 4, 4)  # (B, C, H, W): 16 image tokens
    text, bias = torch.randn(2, 5, 24), torch.zeros(2, 1, 5)  # (B, L, D); additive mask bias (B, 1, L)
    bias[0, :, 3:] = -10000.0
    with torch.no_grad():
        torch.testing.assert_close(ours(attn, image, text, bias), attn.processor(attn, image, text, bias))
        text, bias = torch.randn(2, 16, 24), torch.zeros(2, 1, 16)  # 16 text tokens on 16 image tokens
        bias[:, :, 10:] = -10000.0
        with pytest.raises(RuntimeError):
            attn.processor(attn, image, text, bias)
        out = ours(attn, image, text, bias)
        changed = text.clone()
        changed[:, 10:] = 100 * torch.randn_like(changed[:, 10:])
        torch.testing.assert_close(ours(attn, image, changed, bias), out, rtol=1e-4, atol=1e-5)
    # every attention of an IF backbone runs it, built or loaded
    backbone = build("if-xl-c16", SETTING)
    backbone.save_pretrained(tmp_path)
    for model in (backbone.model, load_backbone(tmp_path).model):
        assert {type(processor) for processor in model.attn_processors.values()} == {AddedKVAttnProcessor}


def test_load_rejects_what_is_not_a_saved_backbone(tmp_path):
    with pytest.raises(UserError, match="t2iscale.json"):
        load_backbone(tmp_path)
    (tmp_path / "t2iscale.json").write_text(json.dumps({"name": "sd2-c32", "setting": {}, "extra": 1}))
    with pytest.raises(UserError, match="keys"):
        load_backbone(tmp_path)
    (tmp_path / "t2iscale.json").write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        load_backbone(tmp_path)
    (tmp_path / "t2iscale.json").write_text(json.dumps({"name": "sd3", "family": "sd2", "setting": {}}))
    with pytest.raises(UserError, match="unknown zoo name 'sd3'"):
        load_backbone(tmp_path)


def test_meta_and_dtype_builds():
    # multi-billion-parameter entries allocate nothing on the meta device
    backbone = build("sdxl-c384-td4_12", device="meta")
    assert all(parameter.is_meta for parameter in backbone.parameters())
    assert sum(parameter.numel() for parameter in backbone.parameters()) > 4e9
    half = build("pixart-h32-d2", SETTING, dtype=torch.bfloat16)
    assert {parameter.dtype for parameter in half.parameters()} == {torch.bfloat16}


def test_sdxl_release_explains_why_it_cannot_run_the_common_signature():
    backbone = build("sdxl-release", device="meta")
    with pytest.raises(NotImplementedError, match="add-embedding"):
        backbone(*make_inputs(backbone.setting, batch=1))


@pytest.mark.parametrize("name", ["sdxl-c16-td1_1", "pixart-h32-d2", "mmdit-d2", "if-xl-c16"])
def test_full_graph_compile_and_autocast(name):
    """No data-dependent Python branches: dynamo captures one graph (the eager backend keeps CPU time low)."""
    torch._dynamo.reset()
    backbone = tiny_backbone(name)
    inputs = make_inputs()
    compiled = torch.compile(backbone, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(*inputs), backbone(*inputs))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_precision = backbone(*inputs)
    assert low_precision.shape == inputs[0].shape and torch.isfinite(low_precision).all()
    torch.testing.assert_close(low_precision.float(), backbone(*inputs), rtol=0.1, atol=0.1)

"""The zoo table: names, grammar, family layouts, settings. Torch-free."""

import pytest

from t2iscale.errors import UserError
from t2iscale.zoo import FAMILIES, PAPER_SETTING, Setting, family_of, list_names, model_config, resolve
from t2iscale.zoo.families import heads_for_width, norm_groups_for_width

SHAPES_SETTING = Setting(resolution=32, latent_factor=1, in_channels=3, text_dim=64, text_len=16)

PAPER_MODELS = [
    "sd2", "sd2-c512", "if-xl-c512", "if-xl", "sdxl", "sdxl-c128", "sdxl-c192", "sdxl-c384", "sdxl-td2",
    "sdxl-td4", "sdxl-td12", "sdxl-td14", "sdxl-td4_4", "sdxl-td4_8", "sdxl-td4_12", "sdxl-c384-td4_12",
    "pixart-h1152-d28", "pixart-h1536-d28", "pixart-h1024-d28", "pixart-h1024-d56",
    "mmdit-d12", "mmdit-d18", "mmdit-d24", "mmdit-d30", "mmdit-d38",
    "sd15-release", "sd2-release", "sdxl-release", "pixart-alpha-xl2-release",
]  # fmt: skip


def test_every_model_of_the_paper_is_named():
    assert set(PAPER_MODELS) <= set(list_names())
    assert len(list_names()) == len(set(list_names()))


@pytest.mark.parametrize("name", list_names())
@pytest.mark.parametrize("setting", [PAPER_SETTING, SHAPES_SETTING], ids=["paper", "shapes"])
def test_named_entry_builds_its_family_class_in_any_setting(name, setting):
    entry = resolve(name)
    config = model_config(name, setting)
    assert config["_class_name"] == FAMILIES[entry.family].model_class
    assert family_of(name) == entry.family
    effective = entry.setting_for(setting)
    assert config["in_channels"] == effective.in_channels
    if not entry.fixed_setting:
        assert effective == setting  # only released configs fix part of the setting
        assert config["sample_size"] == setting.sample_size


def test_named_entries_mean_what_their_names_say():
    for name in list_names():
        entry = resolve(name)
        if not name.endswith("-release"):
            # a named paper model is a plain member of its family's grammar: no hidden options
            assert FAMILIES[entry.family].parse(name) == entry.options
            assert entry.fixed_setting == {}
    assert model_config("sdxl-td2_10") == model_config("sdxl")
    assert model_config("sdxl-c320-td2_10") == model_config("sdxl")
    assert model_config("sdxl-td4") == model_config("sdxl-td2_4")
    assert model_config("sd2-c320") == model_config("sd2")
    assert model_config("if-xl-c704") == model_config("if-xl")


def test_sdxl_layout_places_transformer_depth_per_level():
    config = model_config("sdxl-c384-td4_12")
    assert config["block_out_channels"] == [384, 768, 1536]
    assert config["layers_per_block"] == 2
    assert config["down_block_types"] == ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
    assert config["up_block_types"] == ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
    # level 2 gets a, level 3 gets b; diffusers gives the mid-block the last level's depth (= b)
    assert config["transformer_layers_per_block"][1:] == [4, 12]
    assert config["attention_head_dim"] == [6, 12, 24]  # 64-channel heads (diffusers: head *count*)
    # paper convention: no add-embedding, linear projections, OpenCLIP-H context
    assert config.get("addition_embed_type") is None
    assert config["use_linear_projection"] is True
    assert config["cross_attention_dim"] == 1024


def test_sd2_and_if_xl_layouts():
    sd2 = model_config("sd2")
    assert sd2["block_out_channels"] == [320, 640, 1280, 1280]
    assert sd2["down_block_types"] == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    assert sd2["transformer_layers_per_block"] == [1, 1, 1, 1]
    assert sd2["attention_head_dim"] == [5, 10, 20, 20]  # = the released SD2 config
    if_xl = model_config("if-xl-c512")
    assert if_xl["block_out_channels"] == [512, 1024, 1536, 2048]
    assert if_xl["layers_per_block"] == 3
    # IF-I-XL attends on the feature maps of side 32, 16 and 8 (attention_resolutions): the first three levels of
    # a 32 x 32 latent, plus the mid-block; IF's own blocks (added-KV attention, ResNet resampling)
    assert if_xl["down_block_types"] == ["SimpleCrossAttnDownBlock2D"] * 3 + ["ResnetDownsampleBlock2D"]
    assert if_xl["up_block_types"] == ["ResnetUpsampleBlock2D"] + ["SimpleCrossAttnUpBlock2D"] * 3
    assert if_xl["mid_block_type"] == "UNetMidBlock2DSimpleCrossAttn"
    # kept from the released config; the text is OpenCLIP-H's 1024-d context, projected to its own width
    assert (if_xl["resnet_time_scale_shift"], if_xl["act_fn"], if_xl["attention_head_dim"]) == (
        "scale_shift",
        "gelu",
        64,
    )
    assert (if_xl["addition_embed_type"], if_xl["encoder_hid_dim_type"]) == ("text", "text_proj")
    assert if_xl["encoder_hid_dim"] == if_xl["cross_attention_dim"] == 1024
    assert if_xl["cross_attention_norm"] == "group_norm" and if_xl.get("class_embed_type") is None
    assert if_xl["out_channels"] == if_xl["in_channels"] == 4  # epsilon only: no learned variance


def test_transformer_layouts():
    pixart = model_config("pixart-h1152-d28")
    assert (pixart["num_attention_heads"], pixart["attention_head_dim"], pixart["num_layers"]) == (16, 72, 28)
    assert pixart["patch_size"] == 2 and pixart["caption_channels"] == 1024
    assert pixart["use_additional_conditions"] is False
    mmdit = model_config("mmdit-d24")
    assert mmdit["num_attention_heads"] * mmdit["attention_head_dim"] == 64 * 24
    assert mmdit["caption_projection_dim"] == 64 * 24
    assert mmdit["joint_attention_dim"] == mmdit["pooled_projection_dim"] == 1024


@pytest.mark.parametrize(
    "name, family, expected",
    [
        (
            "sdxl-c16-td1_2",
            "sdxl",
            {"block_out_channels": [16, 32, 64], "transformer_layers_per_block": [1, 1, 2]},
        ),
        ("sdxl-td3", "sdxl", {"transformer_layers_per_block": [1, 2, 3]}),
        ("sd2-c32", "sd2", {"block_out_channels": [32, 64, 128, 128], "attention_head_dim": [1, 1, 2, 2]}),
        (
            "if-xl-c64",
            "if-xl",
            {"block_out_channels": [64, 128, 192, 256], "attention_head_dim": 64},
        ),
        ("if-xl-c48", "if-xl", {"attention_head_dim": 48, "addition_embed_type_num_heads": 1}),
        ("pixart-h128-d4", "pixart", {"attention_head_dim": 8, "num_layers": 4, "cross_attention_dim": 128}),
        ("mmdit-d2", "mmdit", {"num_layers": 2, "num_attention_heads": 2, "caption_projection_dim": 128}),
    ],
)
def test_parametric_names(name, family, expected):
    assert family_of(name) == family
    config = model_config(name, SHAPES_SETTING)
    assert {key: config[key] for key in expected} == expected
    assert config["in_channels"] == 3


def test_tiny_width_rules():
    # 64-channel heads, one full-width head below 64
    assert [heads_for_width(w) for w in (16, 63, 64, 96, 320, 1280)] == [1, 1, 1, 1, 5, 20]
    with pytest.raises(UserError, match="200"):
        heads_for_width(200)  # 3 heads do not split 200 channels
    # 32 groups for every paper width; otherwise groups of >= 4 channels that divide C
    assert [norm_groups_for_width(c) for c in (320, 512, 704, 128, 96, 64, 32, 16, 8, 4, 3)] == [
        32, 32, 32, 32, 24, 16, 8, 4, 2, 1, 1,
    ]  # fmt: skip
    for channels in range(1, 200):
        groups = norm_groups_for_width(channels)
        assert channels % groups == 0
        assert channels // groups >= 4 or groups == 1


@pytest.mark.parametrize(
    "name, closest",
    [
        ("sdxl-td4-4", "sdxl-td4_4"),
        ("sdx1", "sdxl"),
        ("pixart-h1152-d28x", "pixart-h1152-d28"),
        ("sd2-release2", "sd2-release"),
    ],
)
def test_bad_name_lists_forms_and_closest_names(name, closest):
    with pytest.raises(UserError) as error:
        resolve(name)
    message = str(error.value)
    assert repr(name) in message
    assert "sdxl-c<C>-td<a>_<b>" in message and "pixart-h<H>-d<D>" in message and "mmdit-d<D>" in message
    assert closest in message.split("closest known names:")[1]


@pytest.mark.parametrize("name", ["sdxl-c0", "sdxl-c016", "sd2-c", "mmdit-d0", "pixart-h128", "", "SDXL"])
def test_malformed_parametric_names_are_rejected(name):
    with pytest.raises(UserError, match="unknown zoo name"):
        resolve(name)


@pytest.mark.parametrize(
    "name, problem", [("pixart-h100-d2", "multiple of 16"), ("sd2-c100", "heads"), ("sdxl-c200", "heads")]
)
def test_impossible_members_name_themselves(name, problem):
    with pytest.raises(UserError, match=problem) as error:
        model_config(name)
    assert name in str(error.value)


def test_if_layout_needs_a_grid_its_resnet_resampling_can_halve():
    # IF's ResNet down-sampling average-pools and its up-sampling ResNet takes no target size: a 20 px grid would
    # come back as 16 and miss its skip connection, so the name refuses it up front (sd2 takes it).
    odd = Setting(resolution=20, latent_factor=1, in_channels=3, text_dim=32, text_len=8)
    with pytest.raises(UserError, match="if-xl-c16.*divisible by 8, got 20"):
        model_config("if-xl-c16", odd)
    assert model_config("sd2-c16", odd)["sample_size"] == 20


def test_released_configs_fix_their_own_architecture_setting():
    sd15 = resolve("sd15-release")
    config = sd15.model_config(SHAPES_SETTING)
    assert config["cross_attention_dim"] == 768 and config["in_channels"] == 4
    assert config["attention_head_dim"] == [8, 8, 8, 8] and config["use_linear_projection"] is False
    sdxl = model_config("sdxl-release", SHAPES_SETTING)
    assert sdxl["cross_attention_dim"] == 2048
    assert (sdxl["addition_embed_type"], sdxl["addition_time_embed_dim"]) == ("text_time", 256)
    assert sdxl["projection_class_embeddings_input_dim"] == 2816
    pixart = model_config("pixart-alpha-xl2-release")
    assert (pixart["caption_channels"], pixart["out_channels"], pixart["use_additional_conditions"]) == (
        4096,
        8,
        True,
    )
    # resolution and text length still follow the requested setting, so compute stays comparable
    assert sd15.setting_for(SHAPES_SETTING).resolution == SHAPES_SETTING.resolution


def test_setting_defaults_and_serialization():
    assert (
        Setting(resolution=256, latent_factor=8, in_channels=4, text_dim=1024, text_len=77) == PAPER_SETTING
    )
    assert PAPER_SETTING.sample_size == 32
    assert SHAPES_SETTING.sample_size == 32
    assert Setting.from_dict(SHAPES_SETTING.to_dict()) == SHAPES_SETTING
    assert Setting.from_dict({"resolution": 512}) == Setting(resolution=512)
    with pytest.raises(UserError, match="'text_width'"):
        Setting.from_dict({"text_width": 64})
    with pytest.raises(UserError, match="latent_factor"):
        Setting(resolution=100, latent_factor=8)
    for bad in (0, -1, 2.0, True, "8"):
        with pytest.raises(UserError, match="text_len"):
            Setting(text_len=bad)

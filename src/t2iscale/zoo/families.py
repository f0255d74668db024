"""One function per backbone family: family options + a setting -> a diffusers model config.

A config is the keyword arguments of a diffusers model class plus `"_class_name"`, the same shape as a diffusers
`config.json`, so `build` instantiates it and the accounting reads it without torch. Torch-free.

Paper conventions (Li et al., CVPR 2024, Sec. 3-4) applied to the SD2 and SDXL UNet families:
- no SDXL add-embedding or micro-conditioning (the controlled setting conditions on text only);
- linear projections in and out of the transformer blocks (`use_linear_projection=True`, as SD2/SDXL);
- 64-channel attention heads.

The if-xl family keeps DeepFloyd IF's own blocks instead (`if_xl_unet`; docs/zoo.md): no transformer blocks, its
text pooling into the time embedding, 64-channel heads.

Rules for widths the released models never use (tiny shapes-world members):
- heads: `max(1, width // 64)` heads of `width // heads` channels, i.e. 64-channel heads whenever the width is a
  multiple of 64, and one head of the full width below 64. A width with no such split is an error. The IF layout
  takes one head size for all levels: the largest divisor of C up to 64 (`if_head_channels`).
- GroupNorm groups (one count for the whole UNet, it must divide every level's width): 32 — the SD/SDXL/IF value —
  when the base width C is a multiple of 32 and at least 128 (every paper model); otherwise the largest divisor of
  C that is at most min(32, C // 4), so each group at the first level holds at least 4 channels.
"""

from __future__ import annotations

from typing import Any

from t2iscale.errors import UserError
from t2iscale.zoo.setting import Setting

# A diffusers model config: the keyword arguments of the family's model class (`UNet2DConditionModel`, ...).
BackboneConfig = dict[str, Any]

HEAD_CHANNELS = 64
SD_NORM_GROUPS = 32
# PixArt-alpha (Chen et al., 2023) keeps 16 heads at every width; its patch size is 2 on latents.
PIXART_HEADS = 16
PATCH_SIZE = 2


def heads_for_width(width: int) -> int:
    """Number of attention heads at a block of `width` channels (64-channel heads; see module docstring)."""
    heads = max(1, width // HEAD_CHANNELS)
    if width % heads:
        raise UserError(f"width {width} cannot be split into {heads} equal heads (use a multiple of 64)")
    return heads


def norm_groups_for_width(base_channels: int) -> int:
    """GroupNorm groups for a UNet of base width C (see module docstring)."""
    if base_channels % SD_NORM_GROUPS == 0 and base_channels >= 4 * SD_NORM_GROUPS:
        return SD_NORM_GROUPS
    limit = max(1, min(SD_NORM_GROUPS, base_channels // 4))
    return max(g for g in range(1, limit + 1) if base_channels % g == 0)


def if_head_channels(base_channels: int) -> int:
    """Channels per head of the IF layout: one value for every level, so the largest divisor of C up to 64 (64 for
    every paper width; C=32 gives 32-channel heads, 1 to 4 per level)."""
    return max(d for d in range(1, HEAD_CHANNELS + 1) if base_channels % d == 0)


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{key} must be a positive integer, got {value!r}")


def unet_config(
    setting: Setting,
    *,
    channels: int,
    channel_mult: list[int],
    layers_per_block: int,
    attention: list[bool],
    depths: list[int],
    heads_per_level: int | None = None,
    linear_projection: bool = True,
    add_embedding: bool = False,
) -> BackboneConfig:
    """A `UNet2DConditionModel` config with SD-style blocks, shared by the sd2 and sdxl families.

    `attention[i]`: whether level i has cross-attention transformer blocks; `depths[i]`: how many (TD). The
    mid-block always has attention, with the depth of the last level (diffusers takes `depths[-1]`; SDXL: b).
    `heads_per_level`: a fixed head count (SD1.x uses 8) instead of the 64-channel rule.
    """
    _check_positive(channels=channels, layers_per_block=layers_per_block)
    _check_positive(**{f"depth of level {i + 1}": d for i, d in enumerate(depths)})
    widths = [channels * mult for mult in channel_mult]
    heads = [heads_per_level or heads_for_width(width) for width in widths]
    for width, head_count in zip(widths, heads):
        if width % head_count:
            raise UserError(f"width {width} cannot be split into {head_count} heads")
    config: BackboneConfig = {
        "_class_name": "UNet2DConditionModel",
        "sample_size": setting.sample_size,
        "in_channels": setting.in_channels,
        "out_channels": setting.in_channels,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "block_out_channels": widths,
        "layers_per_block": layers_per_block,
        "transformer_layers_per_block": list(depths),
        # diffusers' UNet reads `attention_head_dim` as the number of heads per level (a historical misnomer,
        # diffusers issue #2011); the released SD2/SDXL configs use [5, 10, 20, ...] = 64-channel heads.
        "attention_head_dim": heads,
        "cross_attention_dim": setting.text_dim,
        "use_linear_projection": linear_projection,
        "norm_num_groups": norm_groups_for_width(channels),
        "norm_eps": 1e-5,
        "act_fn": "silu",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }
    if add_embedding:
        # SDXL's add-embedding: pooled CLIP-G text (1280) + 6 micro-conditioning scalars x 256 Fourier features.
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=1280 + 6 * 256,
        )
    return config


def sd2_unet(
    setting: Setting,
    *,
    channels: int = 320,
    heads_per_level: int | None = None,
    linear_projection: bool = True,
) -> BackboneConfig:
    """SD2 UNet (paper Fig. 2, left): mult [1,2,4,4], 2 res blocks, one transformer block at the first three
    levels, none at the last, C=320. `heads_per_level`/`linear_projection` exist for the SD1.5 release config."""
    return unet_config(
        setting,
        channels=channels,
        channel_mult=[1, 2, 4, 4],
        layers_per_block=2,
        attention=[True, True, True, False],
        depths=[1, 1, 1, 1],
        heads_per_level=heads_per_level,
        linear_projection=linear_projection,
    )


def sdxl_unet(
    setting: Setting, *, channels: int = 320, td_a: int = 2, td_b: int = 10, add_embedding: bool = False
) -> BackboneConfig:
    """SDXL UNet (paper Fig. 2, right; Sec. 4.2): mult [1,2,4], 2 res blocks, no attention at the first level,
    transformer depth a at the second and b at the third level and in the mid-block; SDXL is C=320, a=2, b=10."""
    return unet_config(
        setting,
        channels=channels,
        channel_mult=[1, 2, 4],
        layers_per_block=2,
        attention=[False, True, True],
        depths=[1, td_a, td_b],
        add_embedding=add_embedding,
    )


# DeepFloyd IF-I-XL's released UNet (DeepFloyd/IF-I-XL-v1.0 `unet/config.json`; original `config.yml`:
# model_channels 704, channel_mult 1,2,3,4, num_res_blocks 3, attention_resolutions 32,16,8 at image_size 64,
# num_head_channels 64, use_scale_shift_norm, resblock_updown, activation gelu, encoder_dim 4096 -> encoder_channels
# 2816, att_pool_heads 64). docs/zoo.md gives each choice below, what was kept and what the common setting changed.
IF_CHANNEL_MULT = [1, 2, 3, 4]
IF_LAYERS_PER_BLOCK = 3
# IF attends on the feature maps of side 32, 16 and 8 (`attention_resolutions`). In the common setting the input is
# a 32 x 32 latent, so those are the first three levels; the last (4 x 4) level has none, the mid-block has one.
# (Keeping IF's 2x/4x/8x down-sampling factors instead misses the paper's Table 1 by 6-7% in params; docs/zoo.md.)
IF_ATTENTION = [True, True, True, False]
# IF's text group norm before the added K/V projections: diffusers fixes it at 32 groups.
IF_TEXT_NORM_GROUPS = 32


def if_xl_unet(setting: Setting, *, channels: int = 704) -> BackboneConfig:
    """DeepFloyd IF-I-XL's UNet with IF's own blocks, moved into the common latent setting (paper Sec. 4.1).

    Kept from the released config: mult [1,2,3,4], 3 ResNet blocks per level, GELU, scale-shift time conditioning,
    ResNet blocks that down- and up-sample (`resblock_updown`), attention on the feature maps of side 32, 16, 8 and
    in the mid-block, with IF's attention (image tokens attend to themselves and to the text tokens appended to the
    keys and values, no feed-forward; `AttnAddedKVProcessor`) of 64-channel heads, a group norm of the text before
    its K/V projections, a linear projection of the text context (`encoder_hid_proj`) and IF's attention pooling of
    the text into the time embedding (`addition_embed_type="text"`); no class embedding.
    Changed for the setting: 4 latent channels in and out (epsilon only: no learned variance), a 32 x 32 input, and
    the text context (1024-d OpenCLIP-H instead of 4096-d T5) projected to its own width instead of IF's 2816.
    The paper trains C=512 (`if-xl-c512`); C=704 is the released width.
    """
    _check_positive(channels=channels)
    levels = len(IF_CHANNEL_MULT)
    if setting.sample_size % 2 ** (levels - 1):
        # IF's ResNet down-sampling average-pools (floor) and its up-sampling ResNet takes no target size, so an
        # odd side would not meet its skip connection.
        raise UserError(
            f"the IF layout needs an input grid divisible by {2 ** (levels - 1)}, got {setting.sample_size}"
        )
    widths = [channels * mult for mult in IF_CHANNEL_MULT]
    return {
        "_class_name": "UNet2DConditionModel",
        "sample_size": setting.sample_size,
        "in_channels": setting.in_channels,
        "out_channels": setting.in_channels,
        "down_block_types": [
            "SimpleCrossAttnDownBlock2D" if attends else "ResnetDownsampleBlock2D" for attends in IF_ATTENTION
        ],
        "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
        "up_block_types": [
            "SimpleCrossAttnUpBlock2D" if attends else "ResnetUpsampleBlock2D"
            for attends in reversed(IF_ATTENTION)
        ],
        "block_out_channels": widths,
        "layers_per_block": IF_LAYERS_PER_BLOCK,
        # For the SimpleCrossAttn blocks diffusers reads `attention_head_dim` as channels per head (IF: 64), one
        # value for every level (its up path indexes a per-level list unreversed).
        "attention_head_dim": if_head_channels(channels),
        # IF projects its text to encoder_channels 2816 (= 4C); Table 1 is met only at the context's own width.
        "cross_attention_dim": setting.text_dim,
        # A text width the 32-group norm cannot split (tiny shapes-world encoders) goes without it.
        "cross_attention_norm": "group_norm" if setting.text_dim % IF_TEXT_NORM_GROUPS == 0 else None,
        "encoder_hid_dim": setting.text_dim,
        "encoder_hid_dim_type": "text_proj",
        "addition_embed_type": "text",
        # IF pools its 4096-d T5 context with 64 heads of 64 channels; the same head size on the setting's text.
        "addition_embed_type_num_heads": setting.text_dim // if_head_channels(setting.text_dim),
        "resnet_time_scale_shift": "scale_shift",
        "act_fn": "gelu",
        "norm_num_groups": norm_groups_for_width(channels),
        "norm_eps": 1e-5,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }


def pixart_transformer(
    setting: Setting,
    *,
    hidden: int = 1152,
    depth: int = 28,
    out_channels: int | None = None,
    additional_conditions: bool = False,
) -> BackboneConfig:
    """PixArt-alpha transformer (paper Sec. 4.3): patch 2, 16 heads, hidden H, depth D, adaLN-single, cross-
    attention to the caption projected from the text width. `out_channels`/`additional_conditions` exist for the
    released PixArt-XL-2-1024-MS config (learned variance, resolution/aspect-ratio embedders)."""
    _check_positive(hidden=hidden, depth=depth)
    if hidden % PIXART_HEADS:
        raise UserError(f"PixArt hidden width {hidden} must be a multiple of {PIXART_HEADS} (16 heads)")
    if setting.sample_size % PATCH_SIZE:
        raise UserError(
            f"PixArt needs an even input grid, got {setting.sample_size} (patch size {PATCH_SIZE})"
        )
    return {
        "_class_name": "PixArtTransformer2DModel",
        "num_attention_heads": PIXART_HEADS,
        "attention_head_dim": hidden // PIXART_HEADS,
        "in_channels": setting.in_channels,
        "out_channels": out_channels or setting.in_channels,
        "num_layers": depth,
        "cross_attention_dim": hidden,
        "attention_bias": True,
        "sample_size": setting.sample_size,
        "patch_size": PATCH_SIZE,
        "activation_fn": "gelu-approximate",
        "num_embeds_ada_norm": 1000,
        "norm_type": "ada_norm_single",
        "norm_elementwise_affine": False,
        "norm_eps": 1e-6,
        # diffusers' own default, written out so nothing depends on the sample size implicitly.
        "interpolation_scale": max(setting.sample_size // 64, 1),
        "use_additional_conditions": additional_conditions,
        "caption_channels": setting.text_dim,
    }


def mmdit_transformer(setting: Setting, *, depth: int) -> BackboneConfig:
    """SD3-style MMDiT (Esser et al., 2024): depth D joint-attention blocks of width 64*D (D heads of 64).

    The pooled-text input has the text width (the backbone adapter feeds a masked mean of the context)."""
    _check_positive(depth=depth)
    if setting.sample_size % PATCH_SIZE:
        raise UserError(
            f"MMDiT needs an even input grid, got {setting.sample_size} (patch size {PATCH_SIZE})"
        )
    width = HEAD_CHANNELS * depth
    return {
        "_class_name": "SD3Transformer2DModel",
        "sample_size": setting.sample_size,
        "patch_size": PATCH_SIZE,
        "in_channels": setting.in_channels,
        "out_channels": setting.in_channels,
        "num_layers": depth,
        "attention_head_dim": HEAD_CHANNELS,
        "num_attention_heads": depth,
        "joint_attention_dim": setting.text_dim,
        "caption_projection_dim": width,
        "pooled_projection_dim": setting.text_dim,
        # Learned-size positional table in patches; exactly the setting's grid (smaller inputs are cropped).
        "pos_embed_max_size": setting.sample_size // PATCH_SIZE,
        "dual_attention_layers": [],
        "qk_norm": None,
    }

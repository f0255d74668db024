"""Analytic parameter and compute accounting of zoo backbones, from their config alone (no torch, no diffusers).

Conventions (paper Table 1; DESIGN.md "Accounting"), batch 1, one forward pass:
- `params`: every learned parameter (buffers such as fixed positional tables are not parameters);
- `macs`: multiply-accumulates of convolutions and linear layers (bias adds, norms and activations left out);
- `macs_attn`: the QK^T and AV matmuls of every attention (Table 1 leaves these out of GMACs);
- `macs_attn_proj`: the part of `macs` in the attention layers' linear projections (queries, keys, values and
  outputs, of image and text tokens alike), every attention including the mid-block's. This is what Table 1's
  attention column counts: it grows with C^2 (IF-XL C512 -> C704: 23 -> 42), which no count of the QK^T / AV
  matmuls does (docs/zoo.md);
- `fwd_gflops = 2 * (macs + macs_attn) / 1e9`; `train_gflops_per_image = 3 * fwd_gflops` (forward + backward,
  the paper's training-compute rule).

The counters follow the module structure of the diffusers classes the zoo builds (UNet2DConditionModel with
SD-style blocks or with DeepFloyd IF's blocks, PixArtTransformer2DModel, SD3Transformer2DModel) and are tested
against `numel()` and `torch.utils.flop_counter.FlopCounterMode` on instantiated models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from t2iscale.zoo.families import BackboneConfig
from t2iscale.zoo.names import resolve
from t2iscale.zoo.setting import PAPER_SETTING, Setting

# Sinusoidal timestep features fed to PixArt's and SD3's timestep MLPs (diffusers `Timesteps(256)`).
TIMESTEP_FEATURES = 256


@dataclass(frozen=True)
class Accounting:
    name: str
    family: str
    setting: Setting
    params: int
    macs: int
    macs_attn: int
    macs_attn_proj: int = 0

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gmacs_attn(self) -> float:
        return self.macs_attn / 1e9

    @property
    def gmacs_attn_proj(self) -> float:
        return self.macs_attn_proj / 1e9

    @property
    def fwd_gflops(self) -> float:
        return 2 * (self.macs + self.macs_attn) / 1e9

    @property
    def train_gflops_per_image(self) -> float:
        return 3 * self.fwd_gflops

    def train_flops(self, images_seen: int) -> float:
        """Training compute after `images_seen` images: 3 × forward FLOPs each (the paper's rule). The x-axis of
        every compute curve and law; the loop logs it and the study's plan records it from this one method."""
        return images_seen * self.train_gflops_per_image * 1e9

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "setting": self.setting.to_dict(),
            "params": self.params,
            "macs": self.macs,
            "macs_attn": self.macs_attn,
            "macs_attn_proj": self.macs_attn_proj,
            "gmacs": self.gmacs,
            "gmacs_attn": self.gmacs_attn,
            "gmacs_attn_proj": self.gmacs_attn_proj,
            "fwd_gflops": self.fwd_gflops,
            "train_gflops_per_image": self.train_gflops_per_image,
        }


def account(name: str, setting: Setting = PAPER_SETTING) -> Accounting:
    """Parameters and forward compute of zoo entry `name` in `setting` (batch 1)."""
    entry = resolve(name)
    effective = entry.setting_for(setting)
    tally = count_config(entry.model_config(setting), effective.text_len)
    return Accounting(
        name, entry.family, effective, tally.params, tally.macs, tally.macs_attn, tally.macs_attn_proj
    )


@dataclass
class Tally:
    params: int = 0
    macs: int = 0
    macs_attn: int = 0
    macs_attn_proj: int = 0

    def linear(self, n_in: int, n_out: int, tokens: int = 1, bias: bool = True, attn: bool = False) -> None:
        """A linear layer on `tokens` tokens; `attn`: a projection of an attention layer (see `macs_attn_proj`)."""
        self.params += n_in * n_out + (n_out if bias else 0)
        self.macs += tokens * n_in * n_out
        if attn:
            self.macs_attn_proj += tokens * n_in * n_out

    def conv(self, c_in: int, c_out: int, kernel: int, out_pixels: int) -> None:
        self.params += c_in * c_out * kernel * kernel + c_out
        self.macs += out_pixels * c_in * c_out * kernel * kernel

    def norm(self, channels: int) -> None:
        """An affine GroupNorm/LayerNorm: a scale and a shift per channel."""
        self.params += 2 * channels

    def attention(self, q_tokens: int, kv_tokens: int, width: int) -> None:
        # QK^T: q x kv scores of `width / heads` channels per head, all heads: q*kv*width; AV the same.
        self.macs_attn += 2 * q_tokens * kv_tokens * width


def count_config(config: BackboneConfig, text_len: int) -> Tally:
    counters = {
        "UNet2DConditionModel": _count_unet,
        "PixArtTransformer2DModel": _count_pixart,
        "SD3Transformer2DModel": _count_sd3,
    }
    class_name = config["_class_name"]
    if class_name not in counters:
        raise ValueError(f"no accounting for {class_name}")
    return counters[class_name](config, text_len)


# --- UNet2DConditionModel: SD-style blocks (sd2, sdxl) or DeepFloyd IF's blocks (if-xl) -------------------------

# Block types -> "sd" (ResNets, transformer blocks, conv resampling) or "if" (ResNets, added-KV attention, ResNet
# resampling); one UNet uses one kind throughout.
_UNET_BLOCKS = {
    "DownBlock2D": "sd",
    "CrossAttnDownBlock2D": "sd",
    "UpBlock2D": "sd",
    "CrossAttnUpBlock2D": "sd",
    "UNetMidBlock2DCrossAttn": "sd",
    "ResnetDownsampleBlock2D": "if",
    "SimpleCrossAttnDownBlock2D": "if",
    "ResnetUpsampleBlock2D": "if",
    "SimpleCrossAttnUpBlock2D": "if",
    "UNetMidBlock2DSimpleCrossAttn": "if",
}
_ATTENTION_BLOCKS = {
    "CrossAttnDownBlock2D",
    "CrossAttnUpBlock2D",
    "SimpleCrossAttnDownBlock2D",
    "SimpleCrossAttnUpBlock2D",
}


def _count_unet(config: BackboneConfig, text_len: int) -> Tally:
    block_types = [*config["down_block_types"], config["mid_block_type"], *config["up_block_types"]]
    kinds = {_UNET_BLOCKS.get(block_type) for block_type in block_types}
    if None in kinds or len(kinds) != 1:
        raise ValueError(f"UNet accounting covers one kind of blocks throughout: {sorted(_UNET_BLOCKS)}")
    (kind,) = kinds
    tally = Tally()
    widths = config["block_out_channels"]
    depths = config.get("transformer_layers_per_block")
    layers = config["layers_per_block"]
    context_width = config["cross_attention_dim"]
    # The text as it enters the model (before IF's encoder_hid_proj maps it to `cross_attention_dim`).
    text_width = config.get("encoder_hid_dim") or context_width
    time_width = 4 * widths[0]
    # IF's scale-shift conditioning: each ResNet's time projection gives a scale and a shift per channel.
    time_out = 2 if config.get("resnet_time_scale_shift") == "scale_shift" else 1
    # Spatial side per level: a stride-2, pad-1, 3x3 conv gives ceil(side / 2); the up path returns to the
    # skip's side (diffusers passes `upsample_size` when a side is odd). IF's ResNet resampling halves exactly
    # (its family requires a side divisible by 2^(levels - 1)).
    sides = [config["sample_size"]]
    for _ in widths[1:]:
        if kind == "if" and sides[-1] % 2:
            raise ValueError(f"IF blocks need even sides at every level, got {sides}")
        sides.append(math.ceil(sides[-1] / 2))
    pixels = [side * side for side in sides]

    def resnet(c_in: int, c_out: int, level: int) -> None:
        """A ResNet block whose convolutions run at `level`'s side (an IF resampling ResNet resamples first)."""
        tally.norm(c_in)
        tally.conv(c_in, c_out, 3, pixels[level])
        tally.linear(time_width, time_out * c_out)  # time_emb_proj, once per sample
        tally.norm(c_out)
        tally.conv(c_out, c_out, 3, pixels[level])
        if c_in != c_out:
            tally.conv(c_in, c_out, 1, pixels[level])  # conv_shortcut

    def transformer(width: int, depth: int, level: int) -> None:
        tokens = pixels[level]
        tally.norm(width)  # GroupNorm before proj_in
        tally.linear(width, width, tokens)  # proj_in (a linear layer or a 1x1 conv: same count)
        for _ in range(depth):
            tally.norm(width)
            for _ in range(3):  # self-attention q, k, v (no bias)
                tally.linear(width, width, tokens, bias=False, attn=True)
            tally.linear(width, width, tokens, attn=True)  # to_out
            tally.attention(tokens, tokens, width)
            tally.norm(width)
            tally.linear(width, width, tokens, bias=False, attn=True)  # cross-attention q
            for _ in range(2):  # k, v from the text context
                tally.linear(context_width, width, text_len, bias=False, attn=True)
            tally.linear(width, width, tokens, attn=True)
            tally.attention(tokens, text_len, width)
            tally.norm(width)
            tally.linear(width, 8 * width, tokens)  # GEGLU: value and gate of width 4C
            tally.linear(4 * width, width, tokens)
        tally.linear(width, width, tokens)  # proj_out

    def added_kv_attention(width: int, level: int) -> None:
        """IF's attention: image queries over the text keys/values followed by the image's own; no feed-forward."""
        tokens = pixels[level]
        tally.norm(width)  # group_norm of the image tokens
        if config.get("cross_attention_norm") == "group_norm":
            tally.norm(context_width)  # group norm of the text
        for _ in range(3):  # q, k, v of the image tokens (with bias)
            tally.linear(width, width, tokens, attn=True)
        for _ in range(2):  # add_k_proj, add_v_proj of the text tokens
            tally.linear(context_width, width, text_len, attn=True)
        tally.linear(width, width, tokens, attn=True)  # to_out
        tally.attention(tokens, text_len + tokens, width)

    def attention(width: int, level: int) -> None:
        if kind == "sd":
            transformer(width, depths[level], level)
        else:
            added_kv_attention(width, level)

    tally.conv(config["in_channels"], widths[0], 3, pixels[0])  # conv_in
    tally.linear(widths[0], time_width)  # time_embedding.linear_1
    tally.linear(time_width, time_width)  # time_embedding.linear_2
    add_embedding = config.get("addition_embed_type")
    if add_embedding == "text_time":
        tally.linear(config["projection_class_embeddings_input_dim"], time_width)
        tally.linear(time_width, time_width)
    elif add_embedding == "text":
        # IF's attention pooling of the text into the time embedding: a mean-plus-position query token
        # attends over itself and the L text tokens.
        tally.norm(text_width)
        tally.params += text_width  # positional_embedding of the query token
        tally.linear(text_width, text_width, 1, attn=True)  # q of the query token
        for _ in range(2):  # k, v of the query token and the text tokens
            tally.linear(text_width, text_width, text_len + 1, attn=True)
        tally.attention(1, text_len + 1, text_width)
        tally.linear(text_width, time_width)  # proj
        tally.norm(time_width)
    elif add_embedding is not None:
        raise ValueError(f"no accounting for addition_embed_type {add_embedding!r}")
    if config.get("encoder_hid_dim_type") == "text_proj":
        tally.linear(text_width, context_width, text_len)  # encoder_hid_proj
    elif config.get("encoder_hid_dim_type") is not None:
        raise ValueError(f"no accounting for encoder_hid_dim_type {config['encoder_hid_dim_type']!r}")

    last = len(widths) - 1
    for level, block_type in enumerate(config["down_block_types"]):
        c_in = widths[max(level - 1, 0)]
        for i in range(layers):
            resnet(c_in if i == 0 else widths[level], widths[level], level)
            if block_type in _ATTENTION_BLOCKS:
                attention(widths[level], level)
        if level != last:
            if kind == "sd":
                tally.conv(widths[level], widths[level], 3, pixels[level + 1])  # stride-2 downsampler
            else:
                resnet(widths[level], widths[level], level + 1)  # average-pooling ResNet downsampler

    resnet(widths[last], widths[last], last)
    attention(widths[last], last)
    resnet(widths[last], widths[last], last)

    for j, block_type in enumerate(config["up_block_types"]):
        level = last - j
        prev_out = widths[min(level + 1, last)]
        skip_in = widths[max(level - 1, 0)]
        for i in range(layers + 1):
            c_in = (prev_out if i == 0 else widths[level]) + (skip_in if i == layers else widths[level])
            resnet(c_in, widths[level], level)
            if block_type in _ATTENTION_BLOCKS:
                attention(widths[level], level)
        if level != 0:
            if kind == "sd":
                tally.conv(
                    widths[level], widths[level], 3, pixels[level - 1]
                )  # upsampler conv after 2x nearest
            else:
                resnet(widths[level], widths[level], level - 1)  # nearest-upsampling ResNet upsampler

    tally.norm(widths[0])  # conv_norm_out
    tally.conv(widths[0], config["out_channels"], 3, pixels[0])  # conv_out
    return tally


# --- PixArtTransformer2DModel ---------------------------------------------------------------------------------


def _count_pixart(config: BackboneConfig, text_len: int) -> Tally:
    tally = Tally()
    width = config["num_attention_heads"] * config["attention_head_dim"]
    patch = config["patch_size"]
    tokens = (config["sample_size"] // patch) ** 2
    patch_out = patch * patch * config["out_channels"]

    tally.conv(config["in_channels"], width, patch, tokens)  # patch embedding, stride = kernel = patch
    # adaLN-single: one timestep MLP shared by all blocks, then 6 modulation vectors per sample.
    tally.linear(TIMESTEP_FEATURES, width)
    tally.linear(width, width)
    if config["use_additional_conditions"]:
        size_width = width // 3
        for rows in (2, 1):  # resolution (height, width) and aspect ratio, each through its own MLP
            tally.linear(TIMESTEP_FEATURES, size_width, rows)
            tally.linear(size_width, size_width, rows)
    tally.linear(width, 6 * width)
    # Caption projection: text width -> hidden, GELU(tanh), hidden -> hidden.
    tally.linear(config["caption_channels"], width, text_len)
    tally.linear(width, width, text_len)

    for _ in range(config["num_layers"]):
        tally.params += 6 * width  # per-block scale_shift_table
        for _ in range(4):  # self-attention q, k, v, out (with biases)
            tally.linear(width, width, tokens, attn=True)
        tally.attention(tokens, tokens, width)
        tally.linear(width, width, tokens, attn=True)  # cross-attention q
        for _ in range(2):  # k, v from the projected caption
            tally.linear(config["cross_attention_dim"], width, text_len, attn=True)
        tally.linear(width, width, tokens, attn=True)
        tally.attention(tokens, text_len, width)
        tally.linear(width, 4 * width, tokens)  # MLP
        tally.linear(4 * width, width, tokens)

    tally.params += 2 * width  # final scale_shift_table
    tally.linear(width, patch_out, tokens)
    return tally


# --- SD3Transformer2DModel (MMDiT) ----------------------------------------------------------------------------


def _count_sd3(config: BackboneConfig, text_len: int) -> Tally:
    if config["dual_attention_layers"] or config["qk_norm"] is not None:
        raise ValueError("MMDiT accounting covers SD3.0-style blocks (no dual attention, no qk-norm)")
    tally = Tally()
    width = config["num_attention_heads"] * config["attention_head_dim"]
    patch = config["patch_size"]
    tokens = (config["sample_size"] // patch) ** 2
    if config["caption_projection_dim"] != width:
        raise ValueError("MMDiT accounting assumes caption_projection_dim == width")

    tally.conv(config["in_channels"], width, patch, tokens)  # patch embedding
    tally.linear(TIMESTEP_FEATURES, width)  # timestep MLP
    tally.linear(width, width)
    tally.linear(config["pooled_projection_dim"], width)  # pooled-text MLP
    tally.linear(width, width)
    tally.linear(config["joint_attention_dim"], width, text_len)  # context_embedder

    depth = config["num_layers"]
    for index in range(depth):
        context_pre_only = index == depth - 1  # the last block only reads the text stream
        tally.linear(width, 6 * width)  # adaLN-zero of the image stream
        tally.linear(width, (2 if context_pre_only else 6) * width)  # adaLN of the text stream
        for _ in range(3):  # image q, k, v
            tally.linear(width, width, tokens, attn=True)
        for _ in range(3):  # text q, k, v
            tally.linear(width, width, text_len, attn=True)
        tally.attention(tokens + text_len, tokens + text_len, width)  # joint attention over both streams
        tally.linear(width, width, tokens, attn=True)  # to_out
        tally.linear(width, 4 * width, tokens)  # image MLP
        tally.linear(4 * width, width, tokens)
        if not context_pre_only:
            tally.linear(width, width, text_len, attn=True)  # to_add_out
            tally.linear(width, 4 * width, text_len)  # text MLP
            tally.linear(4 * width, width, text_len)

    tally.linear(width, 2 * width)  # norm_out (adaLN-continuous)
    tally.linear(width, patch * patch * config["out_channels"], tokens)
    return tally

"""Build zoo backbones as diffusers models behind one signature; save and load them.

Every family is called the same way by the training loop and the samplers:

    backbone(x, t, text_ctx, text_mask) -> prediction with the shape of x
    x:         (B, C, H, W)  noisy latents or pixels
    t:         (B,)          float timesteps in diffusers units, [0, 1000)
    text_ctx:  (B, L, D)     text-encoder context
    text_mask: (B, L) bool   True = real token, False = padding (None = all real)

Each family uses the text mask as its stock diffusers pipeline calls it, so that trained weights sample the same
in a stock pipeline (`t2iscale export`, docs/export.md) as in t2iscale:
- UNet2DConditionModel (SD, SD2, SDXL, IF layouts): no mask. StableDiffusion(XL)Pipeline and IFPipeline pass
  none, and SD-family UNets were trained attending to every context token (CLIP's padded positions carry the
  causal encoder's outputs; the shapes world's learned encoder zeroes them). Passing the mask here once made a
  run's images differ from a stock pipeline's by up to 75/255 for the same seed.
- PixArtTransformer2DModel: the mask, as PixArtAlphaPipeline passes it (`encoder_attention_mask`, 1 = keep,
  0 = discard, an additive -10000 bias on the cross-attention scores), so the bool mask is passed as is.
- SD3Transformer2DModel has no text mask: padded tokens take part in its joint attention (as in SD3 itself);
  its pooled-text input is the masked mean of the context.
`honors_text_mask` says whether padded tokens are kept out of the prediction.

The adapters hold no data-dependent Python branches, so they work under `torch.compile` and autocast.
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnAddedKVProcessor2_0
from torch import nn

from t2iscale.errors import UserError
from t2iscale.file_modes import restore_umask_mode
from t2iscale.zoo.names import resolve
from t2iscale.zoo.setting import PAPER_SETTING, Setting

METADATA_FILE = "t2iscale.json"
METADATA_KEYS = ("name", "family", "setting")


class Backbone(nn.Module):
    """A zoo backbone: a diffusers model (`.model`) with the common signature. Subclasses map it per model class."""

    # Whether padded tokens (text_mask False) are kept out of the model's attention.
    honors_text_mask = True

    def __init__(self, name: str, family: str, setting: Setting, model: nn.Module):
        super().__init__()
        self.name = name
        self.family = family
        self.setting = setting
        self.model = model

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, text_ctx: torch.Tensor, text_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def save_pretrained(self, directory: str | Path) -> None:
        """diffusers' `save_pretrained` (so diffusers loads `directory` directly) plus `t2iscale.json`."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        metadata = {"name": self.name, "family": self.family, "setting": self.setting.to_dict()}
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        restore_umask_mode(directory)  # safetensors 0.8 writes its weights 0600 (t2iscale.file_modes)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, family={self.family!r}, setting={self.setting}"


class AddedKVAttnProcessor(AttnAddedKVProcessor2_0):
    """IF's attention (diffusers' `AttnAddedKVProcessor2_0`): image queries; keys and values of the text tokens,
    then of the image tokens; no feed-forward. Only the text mask differs: diffusers extends it over the image keys
    only when the text is not exactly as long as the image tokens are many, so a caption of L tokens failed on a
    level of L tokens (16 tokens at 4 x 4). Here the image keys are always appended to the mask, unmasked.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        residual = hidden_states  # (B, C, H, W)
        batch, channels = hidden_states.shape[:2]
        hidden_states = hidden_states.view(batch, channels, -1).transpose(1, 2)  # (B, T, C)
        tokens = hidden_states.shape[1]
        if attention_mask is not None:
            # (B, 1, L) additive bias on the text keys -> (B, 1, 1, L + T), broadcast over heads and queries
            attention_mask = F.pad(attention_mask, (0, tokens), value=0.0).unsqueeze(1)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)  # (B, L, D)
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.head_to_batch_dim(attn.to_q(hidden_states), out_dim=4)  # (B, heads, T, C / heads)
        key = attn.add_k_proj(encoder_hidden_states)  # (B, L, C)
        value = attn.add_v_proj(encoder_hidden_states)
        if not attn.only_cross_attention:
            key = torch.cat([key, attn.to_k(hidden_states)], dim=1)  # (B, L + T, C)
            value = torch.cat([value, attn.to_v(hidden_states)], dim=1)
        key = attn.head_to_batch_dim(key, out_dim=4)
        value = attn.head_to_batch_dim(value, out_dim=4)
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, tokens, channels)  # (B, T, C)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        return hidden_states.transpose(1, 2).reshape(residual.shape) + residual


class UNetBackbone(Backbone):
    def __init__(self, name: str, family: str, setting: Setting, model: nn.Module):
        super().__init__(name, family, setting, model)
        # SDXL's add-embedding needs pooled CLIP-G text and micro-conditioning, which the common signature does
        # not carry; only `sdxl-release` (a parameter-parity config) has it. IF's "text" add-embedding pools the
        # text context itself, so the common signature drives it.
        self.needs_added_conditions = model.config.addition_embed_type == "text_time"
        # No UNet honors the mask: it is not passed (module docstring). IF's blocks would honor it in their
        # attention, but not in the attention pooling of the text nor in the group norm of the text.
        self.honors_text_mask = False
        if model.config.mid_block_type == "UNetMidBlock2DSimpleCrossAttn":
            # IF's blocks: the same attention with the text mask extended in every case (see the processor).
            model.set_attn_processor(AddedKVAttnProcessor())

    def forward(self, x, t, text_ctx, text_mask=None):
        if self.needs_added_conditions:
            raise NotImplementedError(
                f"{self.name} keeps the released add-embedding (pooled text + micro-conditioning) for parameter "
                "parity; the common backbone signature cannot drive it. Train the paper's `sdxl` instead."
            )
        # x (B, C, H, W), text_ctx (B, L, D) -> (B, C, H, W); text_mask unused, as the stock pipelines call UNets
        return self.model(x, t, encoder_hidden_states=text_ctx, return_dict=False)[0]


class PixArtBackbone(Backbone):
    def __init__(self, name: str, family: str, setting: Setting, model: nn.Module):
        super().__init__(name, family, setting, model)
        self.size_conditions = bool(model.config.use_additional_conditions)

    def forward(self, x, t, text_ctx, text_mask=None):
        batch, channels, height, width = x.shape
        if self.size_conditions:
            # The released 1024-MS model also embeds the image size and aspect ratio; they follow from x's shape.
            pixels = self.setting.latent_factor
            resolution = torch.tensor([[height * pixels, width * pixels]], dtype=x.dtype, device=x.device)
            aspect_ratio = torch.tensor([[height / width]], dtype=x.dtype, device=x.device)
            conditions = {
                "resolution": resolution.expand(batch, 2),
                "aspect_ratio": aspect_ratio.expand(batch, 1),
            }
        else:
            conditions = {"resolution": None, "aspect_ratio": None}
        out = self.model(
            x,
            encoder_hidden_states=text_ctx,  # (B, L, D), projected to the hidden width inside
            timestep=t,
            added_cond_kwargs=conditions,
            encoder_attention_mask=text_mask,
            return_dict=False,
        )[0]
        # (B, C_out, H, W); a learned-variance model (the release, C_out = 2C) returns its prediction channels.
        return out[:, :channels]


class MMDiTBackbone(Backbone):
    honors_text_mask = False  # SD3's joint attention has no mask; only the pooled input is masked

    def forward(self, x, t, text_ctx, text_mask=None):
        if text_mask is None:
            pooled = text_ctx.mean(dim=1)
        else:
            weights = text_mask.to(text_ctx.dtype).unsqueeze(-1)  # (B, L, 1)
            pooled = (text_ctx * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, D)
        return self.model(
            hidden_states=x,
            encoder_hidden_states=text_ctx,
            pooled_projections=pooled,
            timestep=t,
            return_dict=False,
        )[0]


ADAPTERS: dict[str, type[Backbone]] = {
    "UNet2DConditionModel": UNetBackbone,
    "PixArtTransformer2DModel": PixArtBackbone,
    "SD3Transformer2DModel": MMDiTBackbone,
}


def build(
    name: str,
    setting: Setting = PAPER_SETTING,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Backbone:
    """Instantiate zoo entry `name` for `setting` with random weights.

    `device="meta"` allocates nothing (shapes only), so the multi-billion-parameter entries build in well under a
    second for parameter counts and sharding plans.
    """
    entry = resolve(name)
    config = entry.model_config(setting)
    class_name = config["_class_name"]
    model_class = getattr(diffusers, class_name)
    kwargs = {key: value for key, value in config.items() if key != "_class_name"}
    device = torch.device(device)
    with torch.device(device):
        model = model_class(**kwargs)
    if device.type != "meta":
        model.to(device)  # a no-op unless some module made a tensor with an explicit device of its own
    if dtype is not None:
        model.to(dtype=dtype)
    return ADAPTERS[class_name](entry.name, entry.family, entry.setting_for(setting), model)


def load_backbone(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Backbone:
    """Restore a backbone written by `Backbone.save_pretrained`."""
    directory = Path(directory)
    metadata_path = directory / METADATA_FILE
    if not metadata_path.is_file():
        raise UserError(f"{metadata_path} not found: {directory} is not a saved t2iscale backbone")
    try:
        metadata = json.loads(metadata_path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{metadata_path}: invalid JSON ({error})") from None
    if not isinstance(metadata, dict) or sorted(metadata) != sorted(METADATA_KEYS):
        raise UserError(f"{metadata_path}: expected exactly the keys {', '.join(METADATA_KEYS)}")
    entry = resolve(metadata["name"])
    if metadata["family"] != entry.family:
        raise UserError(
            f"{metadata_path}: family {metadata['family']!r} does not match {entry.name!r} ({entry.family})"
        )
    setting = Setting.from_dict(metadata["setting"])
    class_name = entry.model_config(setting)["_class_name"]
    model = getattr(diffusers, class_name).from_pretrained(directory, torch_dtype=dtype)
    model.to(device)
    return ADAPTERS[class_name](entry.name, entry.family, setting, model)

"""ImageReward (Xu et al. 2023), from the released checkpoint (paper Sec. 3: one of the metrics measured along
training).

What ImageReward is: BLIP (a ViT image encoder and a BERT text encoder whose layers cross-attend to the image)
fine-tuned on human preference rankings, plus a head on the text encoder's first ([CLS]) output. The released
`ImageReward.pt` is the state dict of the `ImageReward` module of THUDM/ImageReward: `blip.visual_encoder.*`
(ViT-L/16 at 224 px), `blip.text_encoder.*` (BERT-base with cross-attention, 30524 tokens: bert-base-uncased plus
BLIP's [DEC] and [ENC]), `blip.vision_proj.*` / `blip.text_proj.*` (unused for scoring) and `mlp.layers.{0,2,4,6,7}`
(768 -> 1024 -> 128 -> 64 -> 16 -> 1 linear layers; the released head's ReLUs are commented out and its dropouts
are off at inference, so it is affine). The score (`ImageReward.score`) is

    (head(text_encoder(prompt tokens, cross-attending to visual_encoder(image))[:, 0]) - 0.16717362830052426)
        / 1.0333394966054072

the mean and std of the raw head output that ImageReward standardizes by. Prompt tokens: bert-base-uncased,
[CLS] ... [SEP], padded/truncated to 35 tokens (ImageReward's `max_length=35`). Image: RGB, shorter side resized
to 224 (PIL bicubic), center-cropped to 224 x 224, scaled to [0, 1], normalized with the OpenAI CLIP mean/std.

How it is loaded here: transformers' BLIP classes are ports of the same BLIP code (`BlipVisionModel` = BLIP's
ViT, `BlipTextModel` = BLIP's `med.BertModel`), so `released_to_transformers` maps the checkpoint's keys onto
them (the ViT renames of transformers' own BLIP conversion; the text encoder's names are already the same) and
`transformers_to_released` is its inverse (how the tests write a checkpoint in the released naming). Every size
(widths, depths, patch, image size, vocabulary, head) is read from the checkpoint's shapes, with BLIP's 64-wide
attention heads, so a tiny random checkpoint loads through the same code as the real one. The `image-reward`
package is not used: it downloads bert-base-uncased's tokenizer at run time and fixes the ViT size. The tokenizer
comes from a local folder (`--image-reward-tokenizer`: a bert-base-uncased tokenizer, or the processor folder of
any BLIP model, which holds the same vocabulary).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from t2iscale.errors import UserError
from t2iscale.eval.preference import (
    count_truncated,
    local_dir,
    local_file,
    read_state_dict,
    require_keys,
    score_pairs,
)

CHECKPOINT_FLAG = "--image-reward-checkpoint FILE (config: eval.image_reward_checkpoint)"
TOKENIZER_FLAG = "--image-reward-tokenizer DIR (config: eval.image_reward_tokenizer)"

# ImageReward.py: `self.mean`, `self.std` (standardization of the head's raw output) and the prompt length.
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_TOKENS = 35
HEAD_WIDTH = 64  # BLIP's ViT-B/L and BERT-base: every attention head is 64 wide
VISION_LAYER_NORM_EPS = 1e-6  # BLIP's ViT: partial(nn.LayerNorm, eps=1e-6)
TEXT_LAYER_NORM_EPS = 1e-12  # BERT (ImageReward's med_config.json)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# -- the key mapping: released ImageReward.pt <-> transformers BLIP ------------------------------------------

_VISION = "blip.visual_encoder."
_TEXT = "blip.text_encoder."
_HEAD = "mlp.layers."
# (name after "blip.visual_encoder." in ImageReward.pt, BlipVisionModel's name); the placeholders stand for a
# block index, fc1|fc2 and weight|bias, in the same order in both names.
_VISION_NAMES = (
    ("cls_token", "embeddings.class_embedding"),
    ("pos_embed", "embeddings.position_embedding"),
    ("patch_embed.proj.{w}", "embeddings.patch_embedding.{w}"),
    ("blocks.{i}.norm1.{w}", "encoder.layers.{i}.layer_norm1.{w}"),
    ("blocks.{i}.norm2.{w}", "encoder.layers.{i}.layer_norm2.{w}"),
    ("blocks.{i}.attn.qkv.{w}", "encoder.layers.{i}.self_attn.qkv.{w}"),
    ("blocks.{i}.attn.proj.{w}", "encoder.layers.{i}.self_attn.projection.{w}"),
    ("blocks.{i}.mlp.{fc}.{w}", "encoder.layers.{i}.mlp.{fc}.{w}"),
    ("norm.{w}", "post_layernorm.{w}"),
)
_PLACEHOLDERS = {"{i}": r"(\d+)", "{fc}": "(fc1|fc2)", "{w}": "(weight|bias)"}


def _renames(forward: bool) -> tuple[tuple[str, str], ...]:
    """(regular expression over a whole name, replacement) pairs: released -> transformers when `forward`."""
    renames = []
    for released, ours in _VISION_NAMES:
        source, target = (released, ours) if forward else (ours, released)
        pattern, replacement = re.escape(source), target
        for group, placeholder in enumerate(re.findall(r"\{\w+\}", source), start=1):
            pattern = pattern.replace(re.escape(placeholder), _PLACEHOLDERS[placeholder], 1)
            replacement = replacement.replace(placeholder, f"\\{group}", 1)
        renames.append((pattern, replacement))
    return tuple(renames)


# Saved by BLIP's BertEmbeddings as a buffer; transformers rebuilds it.
_TEXT_BUFFERS = ("embeddings.position_ids",)


def released_to_transformers(state: dict[str, torch.Tensor]) -> tuple[dict[str, dict], list[str]]:
    """A released ImageReward state dict as {"vision": BlipVisionModel's, "text": BlipTextModel's (no pooler),
    "head": the head's (`reward_head` keys)}, and the keys left unused (buffers transformers rebuilds are
    dropped)."""
    parts: dict[str, dict] = {"vision": {}, "text": {}, "head": {}}
    unused = []
    for key, value in state.items():
        if key.startswith(_VISION):
            name = _rename(key.removeprefix(_VISION), _renames(forward=True))
            if name is None:
                unused.append(key)
            else:
                parts["vision"][name] = value
        elif key.startswith(_TEXT):
            if key.removeprefix(_TEXT) not in _TEXT_BUFFERS:
                parts["text"][key.removeprefix(_TEXT)] = value
        elif key.startswith(_HEAD):
            parts["head"][key.removeprefix(_HEAD)] = value
        else:
            unused.append(key)
    return parts, unused


def transformers_to_released(vision: dict, text: dict, head: dict) -> dict[str, torch.Tensor]:
    """The inverse of `released_to_transformers`: the three state dicts in ImageReward.pt's names."""
    out = {}
    for key, value in vision.items():
        name = _rename(key, _renames(forward=False))
        if name is None:
            raise ValueError(f"no ImageReward name for the vision key {key!r}")
        out[_VISION + name] = value
    out.update({_TEXT + key: value for key, value in text.items()})
    out.update({_HEAD + key: value for key, value in head.items()})
    return out


def _rename(name: str, renames) -> str | None:
    for pattern, replacement in renames:
        match = re.fullmatch(pattern, name)
        if match is not None:
            return match.expand(replacement)
    return None


# -- the architecture, read from the checkpoint's shapes -----------------------------------------------------


def _count_layers(state: dict, pattern: str) -> int:
    indices = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def vision_config(vision: dict):
    """`BlipVisionConfig` of the ViT whose (transformers-named) weights are `vision`."""
    from transformers import BlipVisionConfig

    width = vision["embeddings.class_embedding"].shape[-1]
    patch = vision["embeddings.patch_embedding.weight"].shape[-1]
    positions = vision["embeddings.position_embedding"].shape[1]
    grid = round((positions - 1) ** 0.5)
    if grid * grid != positions - 1:
        raise UserError(f"{CHECKPOINT_FLAG}: {positions - 1} image patches do not form a square grid")
    return BlipVisionConfig(
        hidden_size=width,
        intermediate_size=vision["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=_count_layers(vision, r"encoder\.layers\.(\d+)\."),
        num_attention_heads=max(1, width // HEAD_WIDTH),
        image_size=grid * patch,
        patch_size=patch,
        layer_norm_eps=VISION_LAYER_NORM_EPS,
    )


def text_config(text: dict):
    """`BlipTextConfig` of the BERT encoder with cross-attention whose weights are `text`."""
    from transformers import BlipTextConfig

    vocab, width = text["embeddings.word_embeddings.weight"].shape
    return BlipTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        encoder_hidden_size=text["encoder.layer.0.crossattention.self.key.weight"].shape[1],
        intermediate_size=text["encoder.layer.0.intermediate.dense.weight"].shape[0],
        num_hidden_layers=_count_layers(text, r"encoder\.layer\.(\d+)\."),
        num_attention_heads=max(1, width // HEAD_WIDTH),
        max_position_embeddings=text["embeddings.position_embeddings.weight"].shape[0],
        layer_norm_eps=TEXT_LAYER_NORM_EPS,
        # Cross-attention layers exist only in a "decoder" config; the forward runs it as an encoder
        # (is_decoder=False: bidirectional self-attention), as ImageReward runs BLIP's text encoder.
        is_decoder=True,
        bos_token_id=None,
        sep_token_id=None,
    )


def reward_head(head: dict) -> nn.Sequential:
    """ImageReward's head: its linear layers at the released indices (0, 2, 4, 6, 7); identities between them
    where the released module has dropouts (inactive at inference) and commented-out ReLUs."""
    indices = sorted({int(key.split(".")[0]) for key in head})
    if not indices:
        raise UserError(f"{CHECKPOINT_FLAG}: no reward head (mlp.layers.*) in the checkpoint")
    layers: list[nn.Module] = [nn.Identity() for _ in range(indices[-1] + 1)]
    for index in indices:
        out_features, in_features = head[f"{index}.weight"].shape
        layers[index] = nn.Linear(in_features, out_features)
    return nn.Sequential(*layers)


# -- the scorer ---------------------------------------------------------------------------------------------


def image_reward_pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """ImageReward's transform of one np.uint8 (H, W, 3) image -> float32 (3, size, size): torchvision's
    Resize(size, BICUBIC) on a PIL image (shorter side to `size`), CenterCrop(size), ToTensor, Normalize."""
    pil = Image.fromarray(image)
    width, height = pil.size
    short, long = min(width, height), max(width, height)
    new_long = int(size * long / short)
    new_width, new_height = (size, new_long) if width <= height else (new_long, size)
    if (new_width, new_height) != (width, height):
        pil = pil.resize((new_width, new_height), Image.BICUBIC)
    top, left = int(round((new_height - size) / 2.0)), int(round((new_width - size) / 2.0))
    pil = pil.crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1)  # (3, size, size)
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)
    return (pixels - mean) / std


class ImageRewardScorer:
    """ImageReward of images against captions, from a local checkpoint and a local BERT tokenizer folder."""

    def __init__(self, checkpoint: str | Path | None, tokenizer: str | Path | None, device: str = "cpu"):
        from transformers import AutoTokenizer, BlipTextModel, BlipVisionModel

        checkpoint = local_file(checkpoint, CHECKPOINT_FLAG, "ImageReward")
        tokenizer_dir = local_dir(tokenizer, TOKENIZER_FLAG, "ImageReward's BERT tokenizer")
        parts, unused = released_to_transformers(read_state_dict(checkpoint, CHECKPOINT_FLAG))
        expected = "an ImageReward checkpoint (blip.visual_encoder.*, blip.text_encoder.*, mlp.layers.*)"
        for name, required in (
            ("vision", ("embeddings.class_embedding", "embeddings.patch_embedding.weight")),
            ("vision", ("embeddings.position_embedding", "encoder.layers.0.mlp.fc1.weight")),
            ("text", ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight")),
            (
                "text",
                (
                    "encoder.layer.0.crossattention.self.key.weight",
                    "encoder.layer.0.intermediate.dense.weight",
                ),
            ),
        ):
            require_keys(parts[name], required, CHECKPOINT_FLAG, checkpoint, expected)
        vision = BlipVisionModel(vision_config(parts["vision"]))
        text = BlipTextModel(text_config(parts["text"]), add_pooling_layer=False)
        head = reward_head(parts["head"])
        for name, module in (("vision", vision), ("text", text), ("head", head)):
            state = module.state_dict()
            require_keys(parts[name], state, CHECKPOINT_FLAG, checkpoint, expected)
            wrong = [key for key in state if parts[name][key].shape != state[key].shape]
            if wrong:
                raise UserError(
                    f"{CHECKPOINT_FLAG} {str(checkpoint)!r}: {name} weight {wrong[0]!r} has shape "
                    f"{tuple(parts[name][wrong[0]].shape)}, the rest of the checkpoint implies "
                    f"{tuple(state[wrong[0]].shape)}"
                )
            extra = sorted(set(parts[name]) - set(state))
            module.load_state_dict({key: parts[name][key] for key in state})
            unused.extend(extra)
        linears = [layer for layer in head if isinstance(layer, nn.Linear)]
        if linears[-1].out_features != 1 or linears[0].in_features != text.config.hidden_size:
            raise UserError(
                f"{CHECKPOINT_FLAG} {str(checkpoint)!r}: the reward head must map the text width "
                f"{text.config.hidden_size} to one number"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        except (OSError, ValueError) as error:
            raise UserError(
                f"{TOKENIZER_FLAG}: cannot load a tokenizer from {str(tokenizer_dir)!r}: {error}"
            ) from error
        if len(self.tokenizer) > text.config.vocab_size:
            raise UserError(
                f"{TOKENIZER_FLAG} {str(tokenizer_dir)!r} has {len(self.tokenizer)} tokens; the checkpoint's text "
                f"encoder reads {text.config.vocab_size} (bert-base-uncased + [DEC] + [ENC]: 30524)"
            )
        self.vision = vision.eval().to(device)
        self.text = text.eval().to(device)
        self.head = head.eval().to(device)
        self.device = device
        self.image_size = vision.config.image_size
        self.unused_keys = unused
        self.source = {"checkpoint": str(checkpoint), "tokenizer": str(tokenizer_dir)}

    def score_batch(self, images: list[np.ndarray], captions: list[str]) -> torch.Tensor:
        """(B,) standardized rewards of the (image, caption) pairs."""
        pixels = torch.stack([image_reward_pixels(image, self.image_size) for image in images]).to(
            self.device
        )
        image_embeds = self.vision(
            pixel_values=pixels
        ).last_hidden_state  # (B, 1 + patches, width), after norm
        tokens = self.tokenizer(
            captions, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)  # input_ids (B, 35): [CLS] prompt [SEP] [PAD]...
        text = self.text(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device),
            is_decoder=False,
        ).last_hidden_state  # (B, 35, 768)
        raw = self.head(text[:, 0].float())[:, 0]  # (B,)
        return (raw - REWARD_MEAN) / REWARD_STD

    def score(self, images, captions: list[str], batch_size: int = 32, progress: bool = False) -> dict:
        """Mean ImageReward of `images` (read lazily, np.uint8 (H, W, 3)) against one caption each.

        `image_scores`: each image's standardized reward, in order; unbounded, about N(0, 1) over the images
        ImageReward was trained on (higher: preferred by people).
        """
        scores = score_pairs(
            images, captions, self.score_batch, metric="ImageReward", batch_size=batch_size, progress=progress
        )
        return {
            "image_reward": float(np.mean(scores)),
            "n_images": len(scores),
            "n_truncated_captions": count_truncated(self.tokenizer, captions, MAX_TOKENS),
            "max_tokens": MAX_TOKENS,
            **self.source,
            "unused_checkpoint_keys": self.unused_keys,
            "image_scores": scores,
        }

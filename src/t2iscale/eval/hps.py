"""HPSv2, the Human Preference Score v2 (Wu et al. 2023), from the released checkpoint (paper Sec. 3: one of the
metrics measured along training).

What HPSv2 is: OpenCLIP's ViT-H/14 (laion2B-s32B-b79K) fine-tuned on human preference pairs. The released files
(`HPS_v2_compressed.pt`, `HPS_v2.1_compressed.pt`) hold an OpenCLIP state dict under "state_dict". An image's
score against its caption is 100 · cos(image embedding, text embedding), the number the HPSv2 benchmark reports
(`hpsv2/evaluation.py`: `image_features @ text_features.T * 100`, features L2-normalized). A result is the mean
over images, with each image's score kept for intervals over prompts.

How it is loaded here: OpenCLIP's CLIP is the OpenAI CLIP layout, which transformers' `CLIPModel` builds exactly
(pre-norm ViT with a class token and ln_pre/ln_post, causal text transformer pooled at the end-of-text token, GELU,
LayerNorm eps 1e-5, projections without bias). `open_clip_to_transformers` maps the checkpoint's keys onto it
(splitting `nn.MultiheadAttention`'s fused in-projection into q/k/v and transposing the two projections), and
`transformers_to_open_clip` is its inverse (how the tests write a checkpoint in the released format). The
`open_clip` package itself is not used: it imports torchvision, which has no build for a CPU-only torch on the
package index this project installs from. The architecture is OpenCLIP's model config (`--hpsv2-arch`): the
built-in `ViT-H-14` (open_clip's `model_configs/ViT-H-14.json`, what HPSv2 fine-tuned) or a JSON file in the same
format (how the tests build a tiny one).

Protocol (`hpsv2/img_score.py`, the released scorer: `create_model_and_transforms(..., light_augmentation=True)`):
- image: RGB to [0, 1] floats, the longer side resized to the model's input size (bicubic, antialiased, on the
  float tensor, no clamping), zero-padded to a square (`ResizeMaxSize`), normalized with the OpenAI CLIP mean/std;
- text: the CLIP BPE tokenizer, start and end tokens, padded/truncated to the context length (77), the end token
  kept. The tokenizer is read from a local folder (`--hpsv2-tokenizer`, what `CLIPTokenizer.save_pretrained`
  writes; every OpenAI/OpenCLIP ViT shares it, e.g. the `--clip-model` folder). OpenCLIP's own tokenizer also
  unescapes HTML entities in a caption: captions with "&amp;" and the like may tokenize differently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from t2iscale.errors import UserError
from t2iscale.eval.preference import (
    count_truncated,
    local_dir,
    local_file,
    read_state_dict,
    require_keys,
    score_pairs,
)

CHECKPOINT_FLAG = "--hpsv2-checkpoint FILE (config: eval.hpsv2_checkpoint)"
TOKENIZER_FLAG = "--hpsv2-tokenizer DIR (config: eval.hpsv2_tokenizer)"
ARCH_FLAG = "--hpsv2-arch"

# OpenCLIP's model configs (open_clip `model_configs/<name>.json`); HPSv2 fine-tuned ViT-H-14.
OPEN_CLIP_ARCHS = {
    "ViT-H-14": {
        "embed_dim": 1024,
        "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24},
    }
}
DEFAULT_ARCH = "ViT-H-14"
# What this loader builds from an OpenCLIP config, with OpenCLIP's defaults (CLIPVisionCfg / CLIPTextCfg).
_VISION_KEYS = {
    "image_size": None,
    "layers": None,
    "width": None,
    "patch_size": None,
    "head_width": 64,
    "mlp_ratio": 4.0,
}
_TEXT_KEYS = {
    "context_length": 77,
    "vocab_size": 49408,
    "width": None,
    "heads": 8,
    "layers": None,
    "mlp_ratio": 4.0,
}
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# -- the key mapping: OpenCLIP (the released checkpoint) <-> transformers CLIPModel ---------------------------

_SINGLE = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
# OpenCLIP multiplies x @ proj with proj (width, embed_dim); nn.Linear keeps weight (embed_dim, width).
_TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
_TOWERS = (
    ("visual.transformer.resblocks", "vision_model.encoder.layers"),
    ("transformer.resblocks", "text_model.encoder.layers"),
)
_IN_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}
_FUSED = "attn.in_proj_"  # nn.MultiheadAttention's (3·width, width) q, k, v stacked in that order
_QKV = ("q_proj", "k_proj", "v_proj")


def open_clip_to_transformers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """An OpenCLIP CLIP state dict in `CLIPModel`'s names: (mapped, keys left unused)."""
    mapped, unused = {}, []
    for key, value in state.items():
        if key in _SINGLE:
            mapped[_SINGLE[key]] = value
        elif key in _TRANSPOSED:
            mapped[_TRANSPOSED[key]] = value.t().contiguous()
        elif (block := _block_key(key)) is not None:
            prefix, rest = block
            if rest.startswith(_FUSED):
                kind = rest.removeprefix(_FUSED)  # weight | bias
                for name, part in zip(_QKV, value.chunk(3, dim=0)):
                    mapped[f"{prefix}.self_attn.{name}.{kind}"] = part.contiguous()
            else:
                module, kind = rest.rsplit(".", 1)
                if module not in _IN_BLOCK:
                    unused.append(key)
                    continue
                mapped[f"{prefix}.{_IN_BLOCK[module]}.{kind}"] = value
        else:
            unused.append(key)
    return mapped, unused


def transformers_to_open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `open_clip_to_transformers`: a `CLIPModel` state dict in OpenCLIP's names."""
    single = {new: old for old, new in _SINGLE.items()}
    transposed = {new: old for old, new in _TRANSPOSED.items()}
    in_block = {new: old for old, new in _IN_BLOCK.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in single:
            out[single[key]] = value
        elif key in transposed:
            out[transposed[key]] = value.t().contiguous()
        else:
            for open_clip_tower, tower in _TOWERS:
                match = re.fullmatch(rf"{re.escape(tower)}\.(\d+)\.(.+)\.(weight|bias)", key)
                if match is None:
                    continue
                index, module, kind = match.groups()
                prefix = f"{open_clip_tower}.{index}"
                if module.startswith("self_attn.") and module.removeprefix("self_attn.") in _QKV:
                    if module == "self_attn.q_proj":  # k and v join q's fused tensor
                        parts = [state[f"{tower}.{index}.self_attn.{name}.{kind}"] for name in _QKV]
                        out[f"{prefix}.{_FUSED}{kind}"] = torch.cat(parts, dim=0)
                else:
                    out[f"{prefix}.{in_block[module]}.{kind}"] = value
                break
            else:
                raise ValueError(f"no OpenCLIP name for {key!r}")
    return out


def _block_key(key: str) -> tuple[str, str] | None:
    """("<transformers layer prefix>", "<rest>") for a key inside an OpenCLIP residual block, else None."""
    for open_clip_tower, tower in _TOWERS:
        match = re.fullmatch(rf"{re.escape(open_clip_tower)}\.(\d+)\.(.+)", key)
        if match is not None:
            return f"{tower}.{match.group(1)}", match.group(2)
    return None


# -- the architecture -----------------------------------------------------------------------------------------


def open_clip_arch(arch: str | Path | dict | None) -> tuple[dict, str]:
    """(OpenCLIP model config, its name): a built-in name (ViT-H-14), a JSON file in open_clip's
    `model_configs` format, or such a dict."""
    if arch is None:
        arch = DEFAULT_ARCH
    if isinstance(arch, dict):
        return arch, "custom"
    if str(arch) in OPEN_CLIP_ARCHS:
        return OPEN_CLIP_ARCHS[str(arch)], str(arch)
    path = Path(arch)
    if path.suffix != ".json" or not path.is_file():
        raise UserError(
            f"{ARCH_FLAG} {str(arch)!r} is neither a built-in architecture ({', '.join(OPEN_CLIP_ARCHS)}) nor a "
            "JSON file of an OpenCLIP model config"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except json.JSONDecodeError as error:
        raise UserError(f"{ARCH_FLAG} {str(path)!r} is not valid JSON: {error}") from error


def clip_config(arch: dict):
    """transformers' `CLIPConfig` of the same network as an OpenCLIP model config (UserError for a config this
    loader does not build: a timm or Hugging Face tower, layer scale, attentional pooling, ...)."""
    from transformers import CLIPConfig

    unknown = sorted(set(arch) - {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"})
    vision = _tower_config(arch.get("vision_cfg"), _VISION_KEYS, "vision_cfg")
    text = _tower_config(arch.get("text_cfg"), _TEXT_KEYS, "text_cfg")
    if unknown or "embed_dim" not in arch:
        raise UserError(
            f"{ARCH_FLAG}: an OpenCLIP config needs embed_dim, vision_cfg and text_cfg (quick_gelu optional)"
            + (f"; unsupported key(s): {', '.join(unknown)}" if unknown else "")
        )
    if vision["width"] % vision["head_width"]:
        raise UserError(f"{ARCH_FLAG}: vision width {vision['width']} is not a multiple of head_width")
    act = "quick_gelu" if arch.get("quick_gelu") else "gelu"
    embed_dim = int(arch["embed_dim"])
    vocab = int(text["vocab_size"])
    return CLIPConfig(
        vision_config=dict(
            hidden_size=vision["width"],
            intermediate_size=int(vision["width"] * vision["mlp_ratio"]),
            num_hidden_layers=vision["layers"],
            num_attention_heads=vision["width"] // vision["head_width"],
            image_size=vision["image_size"],
            patch_size=vision["patch_size"],
            hidden_act=act,
            layer_norm_eps=1e-5,
            projection_dim=embed_dim,
        ),
        text_config=dict(
            hidden_size=text["width"],
            intermediate_size=int(text["width"] * text["mlp_ratio"]),
            num_hidden_layers=text["layers"],
            num_attention_heads=text["heads"],
            vocab_size=vocab,
            max_position_embeddings=text["context_length"],
            hidden_act=act,
            layer_norm_eps=1e-5,
            projection_dim=embed_dim,
            # The CLIP BPE's start and end tokens are its two highest ids (49406, 49407 of 49408).
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            pad_token_id=0,
        ),
        projection_dim=embed_dim,
    )


def _tower_config(given, defaults: dict, name: str) -> dict:
    if not isinstance(given, dict):
        raise UserError(f"{ARCH_FLAG}: the OpenCLIP config has no {name}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise UserError(f"{ARCH_FLAG}: {name} key(s) this loader does not build: {', '.join(unknown)}")
    merged = {**defaults, **given}
    missing = [key for key, value in merged.items() if value is None]
    if missing:
        raise UserError(f"{ARCH_FLAG}: {name} lacks {', '.join(missing)}")
    return merged


# -- the scorer ---------------------------------------------------------------------------------------------


def hps_pixels(image: np.ndarray, size: int) -> torch.Tensor:
    """HPSv2's evaluation transform of one np.uint8 (H, W, 3) image -> float32 (3, size, size)."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255  # ToTensor
    height, width = pixels.shape[1:]
    scale = size / max(height, width)
    if scale != 1.0:  # ResizeMaxSize: the longer side to `size`, on the float tensor
        new_size = (round(height * scale), round(width * scale))
        pixels = F.interpolate(
            pixels[None], size=new_size, mode="bicubic", align_corners=False, antialias=True
        )[0]
    pad_h, pad_w = size - pixels.shape[1], size - pixels.shape[2]
    pixels = F.pad(pixels, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)
    return (pixels - mean) / std


class HpsScorer:
    """HPSv2 of images against captions, from a local checkpoint and a local CLIP tokenizer folder."""

    def __init__(
        self,
        checkpoint: str | Path | None,
        tokenizer: str | Path | None,
        arch: str | Path | dict | None = None,
        device: str = "cpu",
    ):
        from transformers import AutoTokenizer, CLIPModel

        checkpoint = local_file(checkpoint, CHECKPOINT_FLAG, "HPSv2")
        tokenizer_dir = local_dir(tokenizer, TOKENIZER_FLAG, "HPSv2's CLIP tokenizer")
        arch_config, self.arch = open_clip_arch(arch)
        config = clip_config(arch_config)
        state, unused = open_clip_to_transformers(read_state_dict(checkpoint, CHECKPOINT_FLAG, "state_dict"))
        with torch.device("meta"):  # shapes only: a wrong --hpsv2-arch is refused before 1B weights are made
            expected = CLIPModel(config).state_dict()
        require_keys(
            state,
            expected,
            CHECKPOINT_FLAG,
            checkpoint,
            f"a checkpoint of the OpenCLIP {self.arch!r} ({ARCH_FLAG})",
        )
        wrong = [key for key in expected if state[key].shape != expected[key].shape]
        if wrong:
            raise UserError(
                f"{CHECKPOINT_FLAG} {str(checkpoint)!r} does not fit the architecture {self.arch!r} "
                f"({ARCH_FLAG}): {wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, the architecture "
                f"{tuple(expected[wrong[0]].shape)}"
            )
        model = CLIPModel(config)
        model.load_state_dict({key: state[key] for key in expected})
        # `attn_mask` is a buffer OpenCLIP rebuilds; anything else unused is reported in the result.
        self.unused_keys = [key for key in unused if key != "attn_mask"]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        except (OSError, ValueError) as error:
            raise UserError(
                f"{TOKENIZER_FLAG}: cannot load a tokenizer from {str(tokenizer_dir)!r}: {error}"
            ) from error
        vocab = config.text_config.vocab_size
        if self.tokenizer.eos_token_id != vocab - 1 or len(self.tokenizer) > vocab:
            raise UserError(
                f"{TOKENIZER_FLAG} {str(tokenizer_dir)!r} is not the CLIP BPE tokenizer of this model: its "
                f"end-of-text id is {self.tokenizer.eos_token_id} and it has {len(self.tokenizer)} tokens; the "
                f"model reads {vocab} tokens and pools at the end-of-text token, id {vocab - 1}"
            )
        self.model = model.eval().to(device)
        self.device = device
        self.context_length = config.text_config.max_position_embeddings
        self.image_size = config.vision_config.image_size
        self.source = {"checkpoint": str(checkpoint), "tokenizer": str(tokenizer_dir), "arch": self.arch}

    def embed_images(self, images: list[np.ndarray]) -> torch.Tensor:
        """(B, D) L2-normalized image embeddings."""
        pixels = torch.stack([hps_pixels(image, self.image_size) for image in images]).to(self.device)
        pooled = self.model.vision_model(
            pixel_values=pixels
        ).pooler_output  # (B, width): ln_post(class token)
        return F.normalize(self.model.visual_projection(pooled), dim=-1)

    def embed_texts(self, captions: list[str]) -> torch.Tensor:
        """(B, D) L2-normalized text embeddings, pooled at the end-of-text token like OpenCLIP (argmax id)."""
        ids = self.tokenizer(
            captions,
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )["input_ids"].to(self.device)  # (B, 77)
        hidden = self.model.text_model(input_ids=ids).last_hidden_state  # (B, 77, width), after ln_final
        pooled = hidden[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)]
        return F.normalize(self.model.text_projection(pooled), dim=-1)

    def score_batch(self, images: list[np.ndarray], captions: list[str]) -> torch.Tensor:
        """(B,) 100 · cos(image, caption)."""
        return 100 * (self.embed_images(images) * self.embed_texts(captions)).sum(dim=-1)

    def score(self, images, captions: list[str], batch_size: int = 32, progress: bool = False) -> dict:
        """Mean HPSv2 of `images` (read lazily, np.uint8 (H, W, 3)) against one caption each.

        `image_scores`: each image's 100 · cos(image, caption), in order; range [-100, 100].
        """
        scores = score_pairs(
            images, captions, self.score_batch, metric="HPSv2", batch_size=batch_size, progress=progress
        )
        return {
            "hpsv2": float(np.mean(scores)),
            "n_images": len(scores),
            "n_truncated_captions": count_truncated(self.tokenizer, captions, self.context_length),
            "max_tokens": self.context_length,
            **self.source,
            "unused_checkpoint_keys": self.unused_keys,
            "image_scores": scores,
        }

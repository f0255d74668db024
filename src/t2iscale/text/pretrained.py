"""A frozen pretrained text encoder (CLIP or T5 text model, transformers format) from a local directory.

Expected directory: what `save_pretrained` writes for a transformers `CLIPTextModel` (model_type
`clip_text_model`), a full `CLIPModel` (model_type `clip`; only its text tower is loaded) or a
`T5EncoderModel` / T5 checkpoint (model_type `t5`), plus its tokenizer files in the same directory. A diffusers
pipeline folder also works: `text_encoder/` holds the model and `tokenizer/` the tokenizer. Nothing is
downloaded (`local_files_only=True`).

OpenCLIP-H (the paper's text encoder, SD2's: OpenCLIP ViT-H/14, 1024-d, 77 tokens; Li et al. Sec. 3) is
read through the CLIP path, in transformers format: e.g. the text tower of laion/CLIP-ViT-H-14-laion2B-s32B-b79K
(published in transformers format) or SD2's `text_encoder/` + `tokenizer/` folders. Checkpoints in the
`open_clip` package's own format must be converted first; `open_clip` itself is not a dependency here.

Which hidden state becomes the context (`layer`, `final_norm`):
- SD2 / this toolkit's CLIP default: the penultimate block's output, then the final layer norm
  (`layer="penultimate", final_norm=True`; SD2's OpenCLIP embedder does this, and diffusers' SD2 text encoder
  is the same network with the last block removed).
- SDXL: penultimate, without the final norm (`final_norm=False`).
- SD1.x CLIP-L and PixArt-alpha's T5: the last block with the final norm (`layer="last"`; T5 default).

CLIP runs without a padding mask, as SD does (the model is causal, so real tokens never see the padding;
the padded positions carry the embeddings SD-family UNets were trained to attend to). T5 gets the mask.
`text_mask` is always the tokenizer's mask: the backbone decides whether to use it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from t2iscale.errors import UserError
from t2iscale.file_modes import restore_umask_mode
from t2iscale.text.base import TextEncoder, write_manifest

MODEL_FAMILIES = {"clip_text_model": "clip", "clip": "clip", "t5": "t5"}
LAYERS = ("last", "penultimate")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# PixArt-alpha encodes captions with T5 to 120 tokens; CLIP's default is its position table (77).
T5_DEFAULT_MAX_LENGTH = 120
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")


def dtype_from_name(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)


def _has_tokenizer(directory: Path) -> bool:
    return any((directory / name).exists() for name in TOKENIZER_FILES)


def resolve_model_and_tokenizer_dirs(path: Path) -> tuple[Path, Path]:
    """The model directory and the tokenizer directory inside a model folder or a pipeline folder."""
    if (path / "config.json").exists():
        model_dir = path
    elif (path / "text_encoder" / "config.json").exists():
        model_dir = path / "text_encoder"
    else:
        raise UserError(
            f"text encoder directory {str(path)!r} has no config.json (nor text_encoder/config.json); "
            "expected a transformers CLIP or T5 text model saved with save_pretrained"
        )
    for candidate in (model_dir, path / "tokenizer", path):
        if _has_tokenizer(candidate):
            return model_dir, candidate
    raise UserError(
        f"text encoder directory {str(path)!r} has no tokenizer files ({', '.join(TOKENIZER_FILES)}) "
        "next to the model or in tokenizer/"
    )


class PretrainedTextEncoder(TextEncoder):
    """Frozen CLIP / T5 text model + its tokenizer; always in eval mode, never receives gradients."""

    kind = "pretrained"
    trainable = False
    # What `describe()` records besides the folder and `load_described_text_encoder` rebuilds the encoder with.
    OPTIONS = ("layer", "max_length", "final_norm", "dtype")

    def __init__(
        self,
        path: str | Path,
        *,
        layer: str | None = None,
        max_length: int | None = None,
        final_norm: bool = True,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
    ):
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        super().__init__()
        self.path = Path(path)
        model_dir, tokenizer_dir = resolve_model_and_tokenizer_dirs(self.path)
        config_path = model_dir / "config.json"
        try:
            self.model_type = json.loads(config_path.read_text())["model_type"]
        except (json.JSONDecodeError, KeyError) as error:
            raise UserError(f"{config_path}: cannot read model_type ({error})") from error
        if self.model_type not in MODEL_FAMILIES:
            raise UserError(
                f"{config_path}: model_type {self.model_type!r} is not a supported text encoder; "
                f"valid: {', '.join(MODEL_FAMILIES)}"
            )
        self.family = MODEL_FAMILIES[self.model_type]
        self.layer = layer or ("penultimate" if self.family == "clip" else "last")
        if self.layer not in LAYERS:
            raise UserError(f"unknown text encoder layer {self.layer!r}; valid: {', '.join(LAYERS)}")
        if self.family == "t5" and self.layer == "last" and not final_norm:
            raise UserError("T5 exposes its last block only after the final norm; use final_norm=True")
        self.final_norm = bool(final_norm)
        self.dtype = dtype_from_name(dtype)

        model_class = CLIPTextModel if self.family == "clip" else T5EncoderModel
        try:
            self.model = model_class.from_pretrained(model_dir, local_files_only=True, dtype=self.dtype)
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        except OSError as error:
            raise UserError(f"cannot load the text encoder from {str(self.path)!r}: {error}") from error
        self.model.eval().requires_grad_(False)

        self.dim = int(self.model.config.hidden_size)
        if self.family == "clip":
            positions = int(self.model.config.max_position_embeddings)
            self.max_length = int(max_length or positions)
            if self.max_length > positions:
                raise UserError(f"max_length {self.max_length} exceeds CLIP's {positions} positions")
        else:
            self.max_length = int(max_length or T5_DEFAULT_MAX_LENGTH)
        self.to(device)

    def train(self, mode: bool = True):
        """Frozen: stays in eval mode whatever the training loop asks (no dropout, fixed embeddings)."""
        return super().train(False)

    def tokenize(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(
            list(captions),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        )
        return tokens["input_ids"], tokens["attention_mask"].bool()

    def dropped_words(self, caption: str) -> str:
        def pieces(text: str) -> list[int]:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

        unk = self.tokenizer.unk_token_id
        unknown = [word for word in dict.fromkeys(caption.split()) if unk is not None and unk in pieces(word)]
        kept = self.max_length - self.tokenizer.num_special_tokens_to_add()
        cut = pieces(caption)[kept:]
        reasons = []
        if unknown:
            reasons.append(f"{', '.join(unknown)} (unknown to the tokenizer)")
        if cut:
            text = self.tokenizer.decode(cut).strip()
            reasons.append(f"{text!r} ({len(cut)} tokens past max_length={self.max_length})")
        return "; ".join(reasons)

    def _final_layer_norm(self) -> torch.nn.Module:
        if self.family == "clip":
            # transformers 5 puts the norm on CLIPTextModel itself, 4.x under .text_model.
            return getattr(self.model, "text_model", self.model).final_layer_norm
        return self.model.encoder.final_layer_norm

    @torch.no_grad()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        token_ids, mask = self.tokenize(captions)
        token_ids, mask = token_ids.to(self.device), mask.to(self.device)
        use_last_output = self.layer == "last" and self.final_norm
        if self.family == "clip":
            output = self.model(input_ids=token_ids, output_hidden_states=not use_last_output)
        else:
            output = self.model(
                input_ids=token_ids, attention_mask=mask.long(), output_hidden_states=not use_last_output
            )
        if use_last_output:
            return output.last_hidden_state, mask  # (B, L, D)
        # CLIP's hidden_states[-1] is the last block before the final norm; T5's is after it, so T5 only
        # reaches this branch for the penultimate block (checked in __init__).
        hidden = output.hidden_states[-1 if self.layer == "last" else -2]  # (B, L, D)
        if self.final_norm:
            hidden = self._final_layer_norm()(hidden)
        return hidden, mask

    def options(self) -> dict:
        return {
            "layer": self.layer,
            "max_length": self.max_length,
            "final_norm": self.final_norm,
            "dtype": dtype_name(self.dtype),
        }

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "name": f"{self.model_type}:{self.path.resolve()}",
            "model_type": self.model_type,
            "path": str(self.path.resolve()),
            "dim": self.dim,
            **self.options(),
        }

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        write_manifest(directory, self.kind, self.options())
        restore_umask_mode(directory)  # safetensors 0.8 writes 0600 (t2iscale.file_modes)

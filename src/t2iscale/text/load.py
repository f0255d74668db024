"""Load a text encoder from a directory: one saved by `TextEncoder.save`, or a transformers model a user brings.

It sits above both kinds (`learned`, `pretrained`), which import `base` for the interface.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from t2iscale.errors import UserError
from t2iscale.text.base import MANIFEST_NAME, TextEncoder
from t2iscale.text.learned import LearnedTextEncoder
from t2iscale.text.pretrained import PretrainedTextEncoder


def load_text_encoder(
    directory: str | Path, device: str | torch.device | None = None, **options
) -> TextEncoder:
    """Load a text encoder saved by `save`, or a plain transformers CLIP/T5 directory.

    A directory with a t2iscale manifest is rebuilt with the saved options (keyword `options` override those of a
    pretrained encoder: `layer`, `max_length`, `final_norm`, `dtype`). A directory without one is read as a
    transformers model directory (or a diffusers pipeline folder with `text_encoder/` and `tokenizer/`), i.e.
    what a user brings: `PretrainedTextEncoder(directory, **options)`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"text encoder directory {str(directory)!r} does not exist")
    manifest_path = directory / MANIFEST_NAME
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
            kind, saved_options = manifest["kind"], dict(manifest["options"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(f"{manifest_path}: not a valid text encoder manifest ({error})") from error
        if kind == LearnedTextEncoder.kind:
            if options:
                raise UserError(
                    f"{manifest_path}: a learned text encoder takes no load options, got {sorted(options)}"
                )
            encoder = LearnedTextEncoder.load(directory)
        elif kind == PretrainedTextEncoder.kind:
            encoder = PretrainedTextEncoder(directory, **{**saved_options, **options})
        else:
            raise UserError(
                f"{manifest_path}: unknown text encoder kind {kind!r}; valid: learned, pretrained"
            )
    else:
        encoder = PretrainedTextEncoder(directory, **options)
    if device is not None:
        encoder = encoder.to(device)
    return encoder

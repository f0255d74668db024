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


def load_described_text_encoder(
    description: dict, path: str | Path | None = None, device: str | torch.device | None = None
) -> TextEncoder:
    """The frozen encoder that `description` (a `TextEncoder.describe()`, e.g. prepared.json's `text_encoder`)
    summarises, rebuilt with every option it was used with: layer, max_length, final_norm, dtype.

    `path` replaces the described folder (the same weights moved elsewhere). Embeddings made with one layer and
    read with another differ everywhere, so an option the description lacks is an error, never a default.
    """
    where = "the prepared data's text_encoder description"
    if description.get("kind") != PretrainedTextEncoder.kind:
        raise UserError(f"{where} is not a frozen pretrained encoder: {description}")
    missing = [key for key in (*PretrainedTextEncoder.OPTIONS, "dim") if key not in description]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}; prepare the data again with this version")
    path = path or description.get("path")
    if not path:
        raise UserError(f"{where} names no folder: give the frozen text encoder's folder (text.path)")
    options = {key: description[key] for key in PretrainedTextEncoder.OPTIONS}
    encoder = load_text_encoder(path, device=device, **options)
    if not isinstance(encoder, PretrainedTextEncoder):
        raise UserError(
            f"{path} holds a learned text encoder; the data was prepared with a frozen pretrained one"
        )
    found = {"model_type": encoder.model_type, "dim": encoder.dim}
    expected = {key: description.get(key, found[key]) for key in found}
    if found != expected:
        raise UserError(f"text encoder {str(path)!r} is {found}, but the data was prepared with {expected}")
    return encoder

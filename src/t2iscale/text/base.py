"""One interface for every text encoder (`t2iscale.text.load` reads one back from a directory).

Two kinds sit behind it (DESIGN.md, "text/"):

- `LearnedTextEncoder`: a small word-level transformer trained jointly with the backbone (the shapes world,
  where no pretrained encoder knows the vocabulary and everything must run on 2 CPU cores).
- `PretrainedTextEncoder`: a frozen transformers CLIP or T5 text model loaded from a local directory (real
  data; the paper's controlled setting uses SD2's OpenCLIP-H text encoder, 1024-d, 77 tokens, Sec. 3).

Both turn captions into `text_ctx (B, L, D)` and `text_mask (B, L)` (True = a real token), so the training loop
and every backbone adapter see one signature whichever kind is in use.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn

# Written by `TextEncoder.save`; says which class reads the directory back and with which options.
MANIFEST_NAME = "t2iscale_text_encoder.json"


class TextEncoder(nn.Module, ABC):
    """Captions -> (text_ctx (B, L, D) float, text_mask (B, L) bool, True = real token).

    Attributes every encoder has: `dim` (D), `max_length` (L; captions are padded or truncated to it),
    `trainable` (whether the training loop must put its parameters in the optimizer).
    """

    kind: str
    dim: int
    max_length: int
    trainable: bool

    @abstractmethod
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of captions on the encoder's device."""

    @abstractmethod
    def save(self, directory: str | Path) -> None:
        """Write everything `load_text_encoder(directory)` needs to rebuild this encoder."""

    def dropped_words(self, caption: str) -> str:
        """Which words of `caption` the encoder cannot see, and why ("" when it sees all of them).

        Encoders drop words silently (an unknown word becomes one [UNK] token; a long caption is cut at
        `max_length`), so sampling warns with this text (`t2iscale.eval.text_to_image.warn_dropped_words`).
        """
        return ""

    @abstractmethod
    def describe(self) -> dict:
        """A JSON-able summary (kind, name, dim, max_length, options) for metadata files."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def write_manifest(directory: Path, kind: str, options: dict) -> None:
    (directory / MANIFEST_NAME).write_text(json.dumps({"kind": kind, "options": options}, indent=2) + "\n")

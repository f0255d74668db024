"""The learned text encoder of the shapes world: word tokens -> a small pre-norm transformer.

Trained jointly with the backbone (its parameters go into the same optimizer), so it stays tiny: the whole
shapes-world study trains on 2 CPU cores. Saved as `tokenizer.json` (the word vocabulary, `tokenizers` format) +
`model.safetensors` + the t2iscale manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from torch import nn

from t2iscale.errors import UserError
from t2iscale.file_modes import restore_umask_mode
from t2iscale.text.base import MANIFEST_NAME, TextEncoder, write_manifest
from t2iscale.text.word_tokenizer import (
    build_word_tokenizer,
    split_words,
    tokenizer_words,
    vocabulary_words,
)

TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"


class LearnedTextEncoder(TextEncoder):
    """Word embeddings + learned positions + `layers` pre-norm transformer blocks + a final LayerNorm.

    `vocab` is a list of words or phrases (the shapes world's vocabulary); each is lowercased and split into
    words. Padded positions of the output are zeroed, so a backbone that ignores `text_mask` still sees no
    padding content.
    """

    kind = "learned"
    trainable = True

    def __init__(
        self, vocab: list[str], dim: int = 64, max_length: int = 32, layers: int = 2, heads: int = 4
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.dim, self.max_length, self.layers, self.heads = dim, max_length, layers, heads
        self.tokenizer = build_word_tokenizer(vocabulary_words(vocab), max_length)
        self.token_embedding = nn.Embedding(self.tokenizer.get_vocab_size(), dim)
        self.position_embedding = nn.Embedding(max_length, dim)
        block = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=heads,
            dim_feedforward=4 * dim,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # enable_nested_tensor only applies to post-norm blocks; turning it off silences the warning.
        self.transformer = nn.TransformerEncoder(block, num_layers=layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    @property
    def vocab(self) -> list[str]:
        return tokenizer_words(self.tokenizer)

    def tokenize(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> token ids (B, L) int64 and mask (B, L) bool, on CPU (cheap; fine in data workers)."""
        encodings = self.tokenizer.encode_batch(list(captions))
        token_ids = torch.tensor([encoding.ids for encoding in encodings], dtype=torch.long)
        mask = torch.tensor([encoding.attention_mask for encoding in encodings], dtype=torch.bool)
        return token_ids, mask

    def dropped_words(self, caption: str) -> str:
        words = split_words(caption)
        known = self.tokenizer.get_vocab(with_added_tokens=False)
        unknown = [word for word in dict.fromkeys(words) if word not in known]
        cut = words[self.max_length - 1 :]  # [BOS] takes the first position
        reasons = []
        if unknown:
            reasons.append(f"{', '.join(unknown)} (not in the learned vocabulary)")
        if cut:
            reasons.append(f"{' '.join(cut)} (past text.max_length={self.max_length})")
        return "; ".join(reasons)

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        hidden = self.token_embedding(token_ids) + self.position_embedding(positions)  # (B, L, D)
        hidden = self.transformer(hidden, src_key_padding_mask=~mask)  # (B, L, D)
        return self.final_norm(hidden) * mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, D), padding = 0

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        token_ids, mask = self.tokenize(captions)
        token_ids, mask = token_ids.to(self.device), mask.to(self.device)
        return self(token_ids, mask), mask

    def options(self) -> dict:
        return {"dim": self.dim, "max_length": self.max_length, "layers": self.layers, "heads": self.heads}

    def describe(self) -> dict:
        return {"kind": self.kind, "name": f"learned-d{self.dim}-l{self.layers}", **self.options()}

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(directory / TOKENIZER_FILE))
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        write_manifest(directory, self.kind, self.options())
        restore_umask_mode(directory)  # safetensors 0.8 writes 0600 (t2iscale.file_modes)

    @classmethod
    def load(cls, directory: str | Path) -> LearnedTextEncoder:
        directory = Path(directory)
        for name in (MANIFEST_NAME, TOKENIZER_FILE, WEIGHTS_FILE):
            if not (directory / name).exists():
                raise UserError(f"learned text encoder {str(directory)!r} lacks {name}")
        options = json.loads((directory / MANIFEST_NAME).read_text())["options"]
        unknown = set(options) - {"dim", "max_length", "layers", "heads"}
        if unknown:
            raise UserError(f"{directory / MANIFEST_NAME}: unknown options {sorted(unknown)}")
        words = tokenizer_words(Tokenizer.from_file(str(directory / TOKENIZER_FILE)))
        encoder = cls(words, **options)
        encoder.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return encoder

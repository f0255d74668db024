"""Tiny random pretrained text encoders, built from configs and saved like real ones.

Tests and the scale-1 demos use these so the real loading code (`load_text_encoder` ->
`PretrainedTextEncoder`) runs without downloading anything (DESIGN.md, "Nothing may download").

Tokenizers are made offline from a word list:
- CLIP: a byte-pair vocabulary (`vocab.json`) and merge list (`merges.txt`) that spell every word and every
  single letter, written to disk and read back by `CLIPTokenizer.from_pretrained`, as a real CLIP folder is.
- T5: a `tokenizers` Unigram model (one "▁word" piece per word plus single letters) given to
  transformers' `T5Tokenizer(vocab=...)`, which builds the same normalizer, pre-tokenizer and `</s>` template
  as a real T5 tokenizer, without needing sentencepiece or an `spiece.model`.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

DEFAULT_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "and",
    "on",
    "in",
    "to",
    "left",
    "right",
    "above",
    "below",
    "with",
    "photo",
    "picture",
    "image",
    "red",
    "green",
    "blue",
    "yellow",
    "black",
    "white",
    "cat",
    "dog",
    "circle",
    "square",
    "triangle",
    "one",
    "two",
    "three",
    "big",
    "small",
]
CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"


def clip_bpe_files(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """A byte-pair vocabulary and merges that tokenize each of `words` as one token (letters otherwise).

    CLIP's BPE marks the end of a word with "</w>" on its last symbol; a word is built left to right:
    "r e" -> "re", then "re d</w>" -> "red</w>".
    """
    vocab: dict[str, int] = {CLIP_BOS: 0, CLIP_EOS: 1}
    merges: list[str] = []
    for letter in string.ascii_lowercase + string.digits:
        vocab.setdefault(letter, len(vocab))
        vocab.setdefault(letter + "</w>", len(vocab))
    for word in words:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        merged = symbols[0]
        for symbol in symbols[1:]:
            merge = f"{merged} {symbol}"
            merged = merged + symbol
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(merged, len(vocab))
    return vocab, merges


def save_tiny_clip_text_encoder(
    directory: str | Path,
    words: list[str] = DEFAULT_WORDS,
    dim: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_length: int = 16,
    seed: int = 0,
) -> Path:
    """A random `CLIPTextModel` + `CLIPTokenizer` in `directory` (transformers format)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_bpe_files([word.lower() for word in words])
    with tempfile.TemporaryDirectory() as files:
        (Path(files) / "vocab.json").write_text(json.dumps(vocab))
        (Path(files) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        tokenizer = CLIPTokenizer.from_pretrained(files, local_files_only=True)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=dim,
        intermediate_size=4 * dim,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_length,
        bos_token_id=vocab[CLIP_BOS],
        eos_token_id=vocab[CLIP_EOS],
        pad_token_id=vocab[CLIP_EOS],
    )
    torch.manual_seed(seed)
    CLIPTextModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_t5_text_encoder(
    directory: str | Path,
    words: list[str] = DEFAULT_WORDS,
    dim: int = 32,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """A random `T5EncoderModel` + `T5Tokenizer` (Unigram pieces, no sentinels) in `directory`."""
    import torch
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # T5's layout: <pad>=0, </s>=1, <unk>=2, then pieces with log-probabilities (whole words preferred).
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [(f"▁{word.lower()}", -1.0) for word in dict.fromkeys(words)]
    pieces += [(letter, -5.0) for letter in string.ascii_lowercase + string.digits]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0)
    config = T5Config(
        vocab_size=len(pieces),
        d_model=dim,
        d_kv=dim // heads,
        d_ff=2 * dim,
        num_layers=layers,
        num_heads=heads,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    T5EncoderModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory

"""A word-level tokenizer for the learned text encoder, built with the `tokenizers` library.

Captions are lowercased and split on anything that is not a letter or a digit ("A red circle, left of 2
squares." -> a red circle left of 2 squares); every caption starts with [BOS], so even the empty caption
(caption dropout) has one real token and attention never sees an all-padding row.
"""

from __future__ import annotations

import re
import unicodedata

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel

PAD, UNK, BOS = "[PAD]", "[UNK]", "[BOS]"
SPECIAL_TOKENS = (PAD, UNK, BOS)  # ids 0, 1, 2
NOT_A_WORD = r"[^\p{L}\p{N}]+"


def split_words(text: str) -> list[str]:
    """The same word split the tokenizer applies, for building a vocabulary from phrases."""
    return [word for word in re.split(r"[\W_]+", unicodedata.normalize("NFKC", text).lower()) if word]


def vocabulary_words(vocab: list[str]) -> list[str]:
    """Unique words of `vocab` in first-seen order; multi-word entries ("top left") give each word."""
    words: dict[str, None] = {}
    for entry in vocab:
        for word in split_words(entry):
            if word not in SPECIAL_TOKENS:
                words.setdefault(word)
    return list(words)


def build_word_tokenizer(words: list[str], max_length: int) -> Tokenizer:
    """Tokenizer: lowercase, split on non-letters/digits, unknown words -> [UNK], [BOS] first, pad/truncate."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 ([BOS] and one word), got {max_length}")
    token_ids = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        token_ids.setdefault(word, len(token_ids))
    tokenizer = Tokenizer(WordLevel(vocab=token_ids, unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(NOT_A_WORD), behavior="removed")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, token_ids[BOS])]
    )
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=token_ids[PAD], pad_token=PAD, length=max_length)
    return tokenizer


def tokenizer_words(tokenizer: Tokenizer) -> list[str]:
    """The words of a saved tokenizer in id order, without the special tokens."""
    by_id = sorted(tokenizer.get_vocab(with_added_tokens=False).items(), key=lambda item: item[1])
    return [token for token, _ in by_id if token not in SPECIAL_TOKENS]

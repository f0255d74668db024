"""The shapes world's English: noun phrases, plurals, number words, lists, relation wording, nouns.

Training captions and evaluation prompts are both built from these, so they share vocabulary and phrasing.

What a "noun" is here (for image-noun pair counting, paper Sec. 5 "data"): a shape word of the world. Plurals
("circles") and a world's shape synonyms ("disk") count as the shape they name, so an image's nouns are the
distinct shapes its captions name. Colors and sizes are adjectives; relation words and filler words ("clipart",
"background") are not nouns of the world.
"""

from __future__ import annotations

import re
from functools import lru_cache

from t2iscale.data.shapes.world import WorldConfig

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")

# Alternative wordings the diverse synthetic captions use; the canonical wording (left side) is the eval one.
RELATION_SYNONYMS = {
    "left of": ("to the left of", "on the left of"),
    "right of": ("to the right of", "on the right of"),
    "above": ("over", "higher than"),
    "below": ("under", "beneath", "lower than"),
}
OPPOSITE_RELATION = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

EVAL_PREFIX = "a photo of"  # GenEval's prompt frame ("a photo of a red vase"); training captions use it too


def number_word(count: int) -> str:
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)


def plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "sh", "ch")) else noun + "s"


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def noun_phrase(
    shape: str, count: int = 1, color: str | None = None, size: str | None = None, number=True
) -> str:
    """'a small red circle', 'two red circles', or without a number word: 'small red circle', 'red circles'."""
    words = [w for w in (size, color) if w]
    words.append(shape if count == 1 else plural(shape))
    phrase = " ".join(words)
    if not number:
        return phrase
    return with_article(phrase) if count == 1 else f"{number_word(count)} {phrase}"


def join_list(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def normalize_caption(text: str) -> str:
    """Lowercase words only: how captions are compared for the evaluation hold-out (punctuation is no disguise)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@lru_cache(maxsize=32)
def _noun_patterns(shapes: tuple[str, ...], synonyms: tuple[tuple[str, tuple[str, ...]], ...]):
    words = {}
    synonym_map = dict(synonyms)
    for shape in shapes:
        for word in (shape, *synonym_map.get(shape, ())):
            words[word] = shape
            words[plural(word)] = shape
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")\b")
    return pattern, words


def caption_nouns(caption: str, world: WorldConfig) -> set[str]:
    """The world's nouns (canonical shape names) that a caption names."""
    pattern, words = _noun_patterns(world.shapes, tuple(sorted(world.shape_synonyms.items())))
    return {words[match] for match in pattern.findall(caption.lower())}

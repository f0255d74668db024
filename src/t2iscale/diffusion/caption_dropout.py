"""Caption dropout, which is how classifier-free guidance is trained.

The recipe (DESIGN.md, after the paper's SD-style training) replaces 10% of captions with the empty caption
before text encoding, so one backbone learns both the conditional and the unconditional prediction; the
sampler then guides with the empty caption's encoding as the unconditional context.
"""

from __future__ import annotations

import random

CAPTION_DROPOUT_PROBABILITY = 0.1
EMPTY_CAPTION = ""


def drop_captions(captions: list[str], p: float, rng: random.Random) -> list[str]:
    """Return a copy of `captions` where each one is, independently with probability `p`, the empty caption.

    `rng` is the caller's (seeded from the training state), so a resumed run drops the same captions.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"caption dropout probability must be in [0, 1], got {p}")
    return [EMPTY_CAPTION if rng.random() < p else caption for caption in captions]

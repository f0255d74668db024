"""Caption policies (paper Sec. 5, "data"): which caption an image is trained with.

The same policies serve the shapes world and real image-text data, so a caption ablation means the same
thing in both:

- `alt`:  the alt-text (short, partial, noisy).
- `syn1`: the top-1 synthetic caption.
- `syn5`: one of the top-5 synthetic captions, drawn uniformly each time the image is seen.
- `mix`:  50% alt-text, 50% one of the top-5 synthetic captions (the paper's default mix).
"""

from __future__ import annotations

import random

from t2iscale.errors import UserError

CAPTION_POLICIES = ("alt", "syn1", "syn5", "mix")

# Paper: 50% alt-text / 50% synthetic.
MIX_ALT_FRACTION = 0.5
SYNTHETIC_TOP_K = 5


def check_policy(policy: str) -> str:
    if policy not in CAPTION_POLICIES:
        raise UserError(f"unknown caption policy {policy!r}; valid policies: {', '.join(CAPTION_POLICIES)}")
    return policy


def needs_synthetic(policy: str) -> bool:
    return check_policy(policy) != "alt"


def choose_caption(policy: str, alt: str, synthetic: list[str], rng: random.Random) -> str:
    """Pick the caption an image is shown with this time.

    `synthetic` is ranked best first; `rng` is the caller's, seeded from (seed, index, epoch) so a resumed run
    draws the same captions. Raises ValueError when the policy needs captions the sample does not have
    (the caller knows which sample and reports it).
    """
    check_policy(policy)
    if policy == "alt":
        return alt
    if not synthetic:
        raise ValueError(f"caption policy {policy!r} needs synthetic captions but the sample has none")
    if policy == "syn1":
        return synthetic[0]
    top = synthetic[:SYNTHETIC_TOP_K]
    if policy == "syn5":
        return top[rng.randrange(len(top))]
    # mix: draw the coin first so the alt/synthetic split is exactly the configured fraction in expectation.
    if rng.random() < MIX_ALT_FRACTION:
        return alt
    return top[rng.randrange(len(top))]

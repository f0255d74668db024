"""One RNG per seed: a sample's starting noise depends on its seed only.

A prompt and a seed therefore start from the same noise for every backbone, batch size and batch
position, so samples from different runs of a study are comparable image by image (the paper evaluates
every model with fixed seeds). The noise is drawn on the CPU, in float32, and only then moved and
cast, so it is also the same on every device and for every dtype (up to that dtype's rounding).

Sampling randomness beyond the starting noise does not exist here: DDIM runs with eta = 0 and flow Euler
is deterministic, so (backbone, prompt, seed) fixes the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from t2iscale.errors import UserError


def initial_noise(
    seeds: Sequence[int],
    shape_per_sample: Sequence[int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of shape (len(seeds), *shape_per_sample); row i is drawn from seeds[i] alone."""
    rows = []
    for position, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"seed at position {position} is {seed!r}; seeds must be integers")
        generator = torch.Generator(device="cpu").manual_seed(seed)
        rows.append(torch.randn(tuple(shape_per_sample), generator=generator, dtype=torch.float32))
    if not rows:
        raise UserError("initial_noise needs at least one seed")
    return torch.stack(rows).to(device=device, dtype=dtype)

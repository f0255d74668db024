"""Pareto frontier of (X, S) points: the points the paper fits its scaling functions on (Sec. 6).

A point is dominated when another point reaches a higher-or-equal metric S with less-or-equal X (compute,
parameters or data), one of the two strictly. On the compute axis the frontier runs over every evaluation of
every run: for each budget, the best alignment any configuration reached with at most that much compute.
On the params and data axes the same rule over each run's final value gives the envelope of the best run
per model size or data size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from t2iscale.scaling.points import ScalingPoint


def pareto_mask(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated points (less X is better, higher value is better).

    A point (x, s) survives iff s is the highest value among points with the same x, and s is strictly
    higher than every value reached with strictly less x. Equal duplicates dominate neither one another,
    so both are kept.
    """
    x = np.asarray(x, dtype=float)
    values = np.asarray(values, dtype=float)
    if x.shape != values.shape or x.ndim != 1:
        raise ValueError(f"x and values must be 1-D of one length, got shapes {x.shape} and {values.shape}")
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    unique_x, group = np.unique(x, return_inverse=True)
    best_at_x = np.full(unique_x.size, -np.inf)
    np.maximum.at(best_at_x, group, values)
    # best value reached with strictly less x than each unique x
    best_below = np.concatenate([[-np.inf], np.maximum.accumulate(best_at_x)[:-1]])
    return (values == best_at_x[group]) & (values > best_below[group])


def pareto_frontier(points: Sequence[ScalingPoint]) -> list[ScalingPoint]:
    """The non-dominated points, sorted by X (ties by run id and step, so the order is deterministic)."""
    if not points:
        return []
    mask = pareto_mask(np.array([p.x for p in points]), np.array([p.value for p in points]))
    kept = [point for point, keep in zip(points, mask) if keep]
    return sorted(kept, key=lambda p: (p.x, p.run_id, p.step))

"""The paper's analyses of a study's curves, as results the report can always show.

- Compute and data scaling (Li et al., CVPR 2024, Sec. 6): S = a·X^b fitted on the Pareto frontier of
  (X, S) points, with bootstrap intervals and a band from the refits.
- Parameters vs GMACs (Sec. 4, Fig. 10): how well each predicts the final metric.

A partial study may not support a fit (too few frontier points, one dataset size, fewer than three runs).
Then the result carries the reason as a sentence for the page instead of raising.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from t2iscale.errors import UserError
from t2iscale.scaling.correlation import Correlation, final_value_correlations
from t2iscale.scaling.fits import Fit, FitError, fit_law, predict
from t2iscale.scaling.frontier import pareto_frontier
from t2iscale.scaling.points import AXES, Axis, Curve, ScalingPoint, scaling_points


def higher_is_better(metric: str) -> bool:
    """FID-like metrics are distances (lower is better); the frontier and S = a·X^b assume the opposite."""
    return "fid" not in metric


@dataclass(frozen=True)
class Band:
    """The fitted law on a grid of X with its bootstrap percentile band (NaN without bootstrap)."""

    x: np.ndarray  # (m,)
    value: np.ndarray  # (m,)
    lo: np.ndarray  # (m,)
    hi: np.ndarray  # (m,)


@dataclass(frozen=True)
class LawResult:
    axis: Axis
    candidates: list[ScalingPoint]  # every (X, S) point of the axis
    frontier: list[ScalingPoint] = field(default_factory=list)
    fit: Fit | None = None
    reason: str | None = None  # why there is no fit, as a sentence

    def band(self, points: int = 100) -> Band | None:
        """The law over the X range it was fitted on, the frontier's (no extrapolation drawn)."""
        if self.fit is None:
            return None
        xs = [p.x for p in self.frontier]
        x = np.geomspace(min(xs), max(xs), points)
        value, lo, hi = predict(self.fit, x)
        return Band(x=x, value=value, lo=lo, hi=hi)


def fit_frontier_law(
    curves: Sequence[Curve], axis: str, metric: str, bootstrap: int = 1000, seed: int = 0
) -> LawResult:
    """S = a·X^b on the Pareto frontier of `axis` ("compute" or "data"), as the paper fits it."""
    spec = AXES[axis]
    try:
        candidates = scaling_points(curves, axis)
    except UserError as error:
        return LawResult(spec, [], reason=f"No {spec.symbol} points: {error}.")
    if not higher_is_better(metric):
        return LawResult(
            spec,
            candidates,
            reason=f"No Pareto frontier or power law: {metric!r} is lower-is-better, the fits assume higher is better.",
        )
    frontier = pareto_frontier(candidates)
    try:
        fit = fit_law(
            [p.x for p in frontier],
            [p.value for p in frontier],
            form="power",
            bootstrap=bootstrap,
            seed=seed,
            progress=False,
        )
    except FitError as error:
        reason = (
            f"S = a·{spec.symbol}^b cannot be fitted on the {len(frontier)} Pareto-frontier points "
            f"(of {len(candidates)}): {error}."
        )
        return LawResult(spec, candidates, frontier, reason=reason)
    return LawResult(spec, candidates, frontier, fit=fit)


def dataset_sizes(curves: Sequence[Curve]) -> list[int]:
    """The distinct training-set sizes D (image-noun pairs) among the evaluated runs."""
    return sorted({c.dataset_noun_pairs for c in curves if c.dataset_noun_pairs is not None})


def fit_data_law(curves: Sequence[Curve], metric: str, bootstrap: int = 1000, seed: int = 0) -> LawResult:
    """S = a·D^b over runs that know their D; only meaningful when the study varies D."""
    known = [c for c in curves if c.dataset_noun_pairs is not None]
    sizes = dataset_sizes(known)
    if len(sizes) < 2:
        what = (
            "no run records its dataset's image-noun pairs"
            if not sizes
            else f"one dataset size (D = {sizes[0]:,})"
        )
        return LawResult(
            AXES["data"],
            scaling_points(known, "data"),
            reason=f"No data scaling: the evaluated runs have {what}.",
        )
    return fit_frontier_law(known, "data", metric, bootstrap=bootstrap, seed=seed)


@dataclass(frozen=True)
class SizeCorrelations:
    results: list[Correlation]
    reason: str | None = None

    def get(self, predictor: str, method: str) -> Correlation | None:
        return next((r for r in self.results if r.predictor == predictor and r.method == method), None)


def size_correlations(curves: Sequence[Curve]) -> SizeCorrelations:
    """Spearman and Pearson (on log size) of final values with parameters and with GMACs (paper Fig. 10)."""
    try:
        return SizeCorrelations(final_value_correlations(curves))
    except UserError as error:
        return SizeCorrelations([], reason=f"No correlations: {error}.")

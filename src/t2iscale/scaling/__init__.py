"""Statistics of a study's results (Li et al., CVPR 2024, Sec. 4-6): numpy/scipy only, never torch.

It computes from curves and per-sample scores (`t2iscale.eval.samples.SampleScores`, one evaluation's score per
(prompt, eval seed); their intervals: `t2iscale.eval.intervals`) and never reads a study database
(`t2iscale.findings` does that):

- `points`:      `Curve` (one run's metric along training) and its JSON/CSV files; `scaling_points` turns
                 curves into (X, S) points for X = training compute C, parameters N or data D.
- `arms`:        configurations (replicate runs pooled over training seeds) and arms (what a finding compares).
- `compare`:     two arms at a matched step, compute or parameter count: effect, interval, p, verdict.
- `frontier`:    the Pareto frontier of (X, S) points (the paper fits on frontier points).
- `fits`:        S = a·X^b and S = S∞ − a·X^(−b) with cluster-robust t intervals, R², RMSE, `predict`.
- `correlation`: how well parameters vs GMACs predict the final metric (paper Fig. 10), exact small-n p.
- `published`:   the paper's published laws and stated findings, for comparison and tests.

This package must stay importable without torch (a test checks it), so studies can be fitted and
reported on a machine that never trains.
"""

from __future__ import annotations

import importlib

# Public name -> submodule. Loaded on first use (PEP 562) so that importing the package does not pay for scipy.
_EXPORTS = {
    "Correlation": "correlation",
    "final_value_correlations": "correlation",
    "FORMS": "fits",
    "Fit": "fits",
    "FitError": "fits",
    "fit_law": "fits",
    "predict": "fits",
    "pareto_frontier": "frontier",
    "pareto_mask": "frontier",
    "AXES": "points",
    "Curve": "points",
    "ScalingPoint": "points",
    "curves_from_json": "points",
    "curves_to_json": "points",
    "load_points": "points",
    "save_points": "points",
    "scaling_points": "points",
    "PUBLISHED_LAWS": "published",
    "PublishedLaw": "published",
    "PAPER_FINDINGS": "published",
    "Configuration": "arms",
    "Arm": "arms",
    "Comparison": "compare",
    "compare_arms": "compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

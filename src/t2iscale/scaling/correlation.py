"""Which size measure predicts alignment: parameters or GMACs (paper Sec. 4, Fig. 10).

The paper finds a run's final alignment tracks inference GMACs more closely than parameter count (UNets of
one parameter count can differ a lot in compute, e.g. by where their transformer depth sits). Here: the
Spearman and Pearson correlation of each configuration's final metric (the mean over its training seeds) with
its parameters and with its GMACs.

p-values are two-sided. With few configurations (n ≤ 9, i.e. up to 9! = 362,880 orderings) they are exact:
the share of all orderings of the metric values whose |correlation| reaches the observed one
(`scipy.stats.permutation_test`). A perfect ranking of 4 models has p = 2/24 = 1/12, not the 0 that the
asymptotic formula prints. From 10 on, scipy's t approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from t2iscale.errors import UserError
from t2iscale.scaling.points import Curve

PREDICTORS = ("params", "gmacs")
METHODS = ("spearman", "pearson")
MIN_RUNS = 3  # below three points a correlation and its p-value mean nothing
MAX_EXACT_N = 9


@dataclass(frozen=True)
class Correlation:
    predictor: str  # "params" or "gmacs"
    method: str  # "spearman" or "pearson"
    coefficient: float
    p_value: float
    p_method: str  # how p was computed
    n_runs: int  # points correlated: configurations (each the mean over its training seeds)
    n_seeds: tuple[int, ...]  # training seeds behind each point
    log_predictor: bool  # Pearson on log(predictor); Spearman is unchanged by the log

    def to_dict(self) -> dict:
        data = asdict(self)
        data["n_seeds"] = list(self.n_seeds)
        return data


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson's r of fixed `x` (n,) with `y` along `axis` (vectorised over permutations of y)."""
    xc = x - x.mean()
    yc = y - y.mean(axis=axis, keepdims=True)
    return (yc * xc).sum(axis=axis) / np.sqrt((xc**2).sum() * (yc**2).sum(axis=axis))


def correlation_test(x, y, method: str) -> tuple[float, float, str]:
    """(coefficient, two-sided p, how p was computed) for Spearman or Pearson of `x` and `y` (n,)."""
    if method not in METHODS:
        raise UserError(f"unknown correlation {method!r}; valid: {', '.join(METHODS)}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if method == "spearman":  # Pearson's r of the ranks (ties share the mean rank)
        x, y = stats.rankdata(x), stats.rankdata(y)
    coefficient = float(_pearson(x, y))
    n = x.size
    if n <= MAX_EXACT_N:
        result = stats.permutation_test(
            (y,),
            lambda permuted, axis: _pearson(x, permuted, axis),
            permutation_type="pairings",
            n_resamples=math.factorial(n),
            vectorized=True,
            alternative="two-sided",
        )
        return coefficient, float(result.pvalue), f"exact permutation test over {math.factorial(n)} orderings"
    result = stats.pearsonr(x, y)
    return coefficient, float(result.pvalue), "t approximation"


def final_value_correlations(curves: Sequence[Curve], log_predictor: bool = True) -> list[Correlation]:
    """Correlations of each curve's final value with its params and with its GMACs.

    Give one curve per configuration (seeds averaged: `t2iscale.scaling.arms.Configuration.as_curve`). Pearson
    is taken on log(predictor) by default because sizes in a study are spaced geometrically and the laws are
    power laws; Spearman depends only on ranks. Raises UserError when a curve lacks params / gmacs, when there
    are fewer than three curves, or when a predictor or the metric is the same for every curve.
    """
    if len(curves) < MIN_RUNS:
        raise UserError(f"correlations need at least {MIN_RUNS} runs, got {len(curves)}")
    final = np.array([curve.final_value for curve in curves])
    if np.ptp(final) == 0:
        raise UserError("every run has the same final value; correlations are undefined")
    results = []
    for predictor in PREDICTORS:
        missing = [curve.run_id for curve in curves if getattr(curve, predictor) is None]
        if missing:
            raise UserError(f"run {missing[0]!r} has no {predictor!r}; correlations need it for every run")
        x = np.array([float(getattr(curve, predictor)) for curve in curves])
        if np.ptp(x) == 0:
            raise UserError(f"every run has the same {predictor!r}; its correlation is undefined")
        for method in METHODS:
            on_log = log_predictor and method == "pearson"
            coefficient, p, how = correlation_test(np.log(x) if on_log else x, final, method)
            results.append(
                Correlation(
                    predictor=predictor,
                    method=method,
                    coefficient=coefficient,
                    p_value=p,
                    p_method=how,
                    n_runs=len(curves),
                    n_seeds=tuple(curve.n_seeds for curve in curves),
                    log_predictor=on_log,
                )
            )
    return results

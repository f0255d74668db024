"""Which size measure predicts alignment: parameters or GMACs (paper Sec. 4, Fig. 10).

The paper finds a run's final alignment tracks inference GMACs more closely than parameter count (UNets of
one parameter count can differ a lot in compute, e.g. by where their transformer depth sits). Here: the
Spearman and Pearson correlation of each run's final metric with its parameters and with its GMACs, with
scipy's two-sided p-values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from t2iscale.errors import UserError
from t2iscale.scaling.points import Curve

PREDICTORS = ("params", "gmacs")
METHODS = ("spearman", "pearson")
MIN_RUNS = 3  # below three runs a correlation and its p-value mean nothing


@dataclass(frozen=True)
class Correlation:
    predictor: str  # "params" or "gmacs"
    method: str  # "spearman" or "pearson"
    coefficient: float
    p_value: float
    n_runs: int
    log_predictor: bool  # Pearson on log(predictor); Spearman is unchanged by the log

    def to_dict(self) -> dict:
        return asdict(self)


def final_value_correlations(curves: Sequence[Curve], log_predictor: bool = True) -> list[Correlation]:
    """Correlations of each curve's final value with its params and with its GMACs.

    Pearson is taken on log(predictor) by default because sizes in a study are spaced geometrically and the
    laws are power laws; Spearman depends only on ranks. Raises UserError when a run lacks params / gmacs,
    when there are fewer than three runs, or when a predictor or the metric is the same for every run.
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
        spearman = stats.spearmanr(x, final)
        pearson = stats.pearsonr(np.log(x) if log_predictor else x, final)
        for method, result in (("spearman", spearman), ("pearson", pearson)):
            results.append(
                Correlation(
                    predictor=predictor,
                    method=method,
                    coefficient=float(result.statistic),
                    p_value=float(result.pvalue),
                    n_runs=len(curves),
                    log_predictor=log_predictor and method == "pearson",
                )
            )
    return results

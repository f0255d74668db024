"""Scaling laws fitted to (X, S) points, with intervals that hold at 4-10 points (paper Sec. 6).

Two forms, one table (`FORMS`):

- `power`: S = a·X^b, the paper's form for compute C, parameters N and data D (e.g. S = 0.47·C^0.02).
  Ordinary least squares on log S = log a + b·log X: a closed form, no starting values, and relative errors
  weighed equally along X, which is how such laws are drawn and read (straight lines on log-log axes).
- `saturating`: S = S∞ − a·X^(−b), for metrics that approach a ceiling. Nonlinear least squares with
  `scipy.optimize.curve_fit` (trust-region, bounded), started from a grid over b where the model is linear
  in (S∞, a). X is divided by its geometric mean inside the fit so a stays of order one whatever the unit.

Intervals are t intervals, on log scale for the power law. With one point per run (configuration) the points
are independent and the least-squares covariance with n − k df is exact under normal errors. A law's points
are not independent when one run gives several of them: on the compute axis the Pareto frontier holds
consecutive evaluations of one run, whose deviations from the law are shared. Then the covariance is
cluster-robust with the run as the cluster, in its small-sample form CR2 (Bell & McCaffrey 2002), with the
Bell–McCaffrey degrees of freedom (Imbens & Kolesár 2016) for each parameter or prediction. The saturating law
uses its linearisation at the estimate, in the parametrisation (S∞, log c, log b) with c the scale at the
points' geometric-mean X.
Measured by simulation (tests/scaling/test_fit_coverage.py; S = 0.02·C^0.12, 3% noise, 500 studies, nominal
95%): with 5 and 8 independent points the exponent and the prediction 5× beyond the largest X were covered in
0.94-0.96 of studies; with 8 points from 4 runs that share run-level deviations, 0.97. On the same studies the
pairs bootstrap over points that this module used before covered 0.87-0.91 with independent points and
0.78-0.81 with clustered ones; the classical OLS interval on clustered points 0.62-0.89 (4-8 runs).
The linearised saturating law covered its parameters and predictions in 0.92-0.97 at 6-10 points.

A saturating law whose exponent or scale interval spans more than an order of magnitude, or whose ceiling's
interval is far wider than the points' spread, is *not identified*: `fit_law` says so
(FitError) instead of printing numbers. `predict` keeps predictions in the metric's range: a law whose own
value leaves the range is refused, an interval is clipped and says so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit

from t2iscale.errors import UserError

DEFAULT_CI_LEVEL = 0.95
# An interval of a positive parameter spanning more than this factor (hi / lo, an order of magnitude) means the
# points do not
# determine it.
MAX_IDENTIFIED_RATIO = 10.0


class FitError(UserError):
    """A law cannot be fitted to these points (too few, wrong sign, no convergence, not identified); says why."""


class OutOfRange(UserError):
    """A law's prediction falls outside the metric's range."""


class _Covariance:
    """Covariance of a least-squares estimate θ̂ and the df of a t interval for any contrast of θ.

    `jacobian` (n, k) is the model's derivative at the estimate (the design matrix for a linear model),
    `residuals` (n,) and `clusters` (n,) a run id per point. With one point per run the points are independent
    and the classical s²·(JᵀJ)⁻¹ with n − k df is exact under normal errors. When a run gives several points
    the covariance is CR2 cluster-robust, with Bell–McCaffrey df per contrast (on independent points it would
    be HC2, whose df make it conservative: 0.97-0.98 at 5 points in the same simulation).
    """

    def __init__(self, jacobian: np.ndarray, residuals: np.ndarray, clusters: np.ndarray):
        n, k = jacobian.shape
        gram = jacobian.T @ jacobian
        if np.linalg.matrix_rank(gram) < k:
            raise FitError("the law's parameters are not identified by these points (singular design)")
        self.jacobian = jacobian
        self.bread = np.linalg.inv(gram)  # (k, k)
        self.members = [np.flatnonzero(clusters == c) for c in dict.fromkeys(clusters.tolist())]
        self.clustered = any(len(idx) > 1 for idx in self.members)
        if not self.clustered:
            self.covariance = float(residuals @ residuals) / (n - k) * self.bread
            return
        hat = jacobian @ self.bread @ jacobian.T  # (n, n)
        self.residual_maker = np.eye(n) - hat
        self.adjust = []  # A_g = (I - H_gg)^(-1/2) per cluster
        meat = np.zeros((k, k))
        for idx in self.members:
            values, vectors = np.linalg.eigh(self.residual_maker[np.ix_(idx, idx)])
            if values.min() < 1e-10:
                raise FitError(
                    f"one run's {len(idx)} point(s) alone determine the law (leverage 1): its interval is not "
                    "identified; add runs"
                )
            adjust = vectors @ np.diag(values**-0.5) @ vectors.T
            self.adjust.append(adjust)
            score = jacobian[idx].T @ adjust @ residuals[idx]  # (k,)
            meat += np.outer(score, score)
        self.covariance = self.bread @ meat @ self.bread

    @property
    def method(self) -> str:
        if self.clustered:
            return "t interval, cluster-robust CR2 covariance (a cluster per run or configuration), Bell–McCaffrey df"
        return "t interval, least-squares covariance (one point per run or configuration), n − k df"

    def se_df(self, contrast: np.ndarray) -> tuple[float, float]:
        """Standard error of contrast·θ and the degrees of freedom of its t quantile."""
        se = math.sqrt(max(float(contrast @ self.covariance @ contrast), 0.0))
        n, k = self.jacobian.shape
        if not self.clustered:
            return se, float(n - k)
        direction = self.bread @ contrast  # (k,)
        columns = np.column_stack(
            [
                self.residual_maker[:, idx] @ adjust @ self.jacobian[idx] @ direction
                for idx, adjust in zip(self.members, self.adjust)
            ]
        )  # (n, G)
        gram = columns.T @ columns
        denominator = float(np.trace(gram @ gram))
        df = float(np.trace(gram) ** 2 / denominator) if denominator > 0 else math.inf
        return se, df


def _t(level: float, df: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2, df))


class PowerLaw:
    """S = a·X^b, least squares in log-log space; θ = (log a, b)."""

    name = "power"
    param_names = ("a", "b")
    min_points = 3  # two parameters and at least one degree of freedom
    min_distinct_x = 2

    def formula(self, symbol: str = "X") -> str:
        return f"S = a·{symbol}^b"

    def render(self, params: np.ndarray, symbol: str = "X") -> str:
        a, b = params
        return f"S = {a:.4g}·{symbol}^{b:.4g}"

    def evaluate(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        # params (..., 2), x (m,) -> (..., m)
        params = np.asarray(params, dtype=float)
        return params[..., 0, None] * np.power(x, params[..., 1, None])

    def check(self, x: np.ndarray, y: np.ndarray) -> None:
        bad = np.flatnonzero(y <= 0)
        if bad.size:
            i = bad[0]
            raise FitError(
                f"a power law S = a·X^b is fitted on log S and needs S > 0; point {i} (X={x[i]:.6g}) "
                f"has S={y[i]:.6g}"
            )

    def fit(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, _Linearised]:
        design = np.stack([np.ones_like(x), np.log(x)], axis=1)  # (n, 2)
        theta, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
        residuals = np.log(y) - design @ theta
        return np.array([math.exp(theta[0]), theta[1]]), _Linearised(theta, design, residuals, self)

    # The reported parameters as (g(θ), ∇g, transform): parameter = transform(g), its interval
    # transform(g ± t·se) with se from ∇g (the delta method; exact here, where g is linear in θ).
    def param_contrasts(self, theta: np.ndarray) -> list[tuple[float, np.ndarray, Any]]:
        return [
            (float(theta[0]), np.array([1.0, 0.0]), np.exp),
            (float(theta[1]), np.array([0.0, 1.0]), _identity),
        ]

    def prediction(self, theta: np.ndarray, x0: float) -> tuple[float, np.ndarray, Any]:
        """(g(θ), ∇g, transform): the prediction at x0 is transform(g) with g linear in θ here."""
        contrast = np.array([1.0, math.log(x0)])
        return float(contrast @ theta), contrast, np.exp


class SaturatingLaw:
    """S = S∞ − a·X^(−b) with a > 0, b > 0: rises with X towards the ceiling S∞. θ = (S∞, log c, log b)
    with c = a·x_ref^(−b) the scale at the points' geometric-mean X."""

    name = "saturating"
    param_names = ("s_inf", "a", "b")
    min_points = 4  # three parameters and at least one degree of freedom
    min_distinct_x = 3
    b_bounds = (1e-3, 10.0)
    # S∞ may lie above the highest observed S by at most this many times the observed range of S; beyond
    # that the points do not show saturation and the fit is a power law in disguise.
    s_inf_headroom = 10.0

    def formula(self, symbol: str = "X") -> str:
        return f"S = S∞ − a·{symbol}^(−b)"

    def render(self, params: np.ndarray, symbol: str = "X") -> str:
        s_inf, a, b = params
        return f"S = {s_inf:.4g} − {a:.4g}·{symbol}^(−{b:.4g})"

    def evaluate(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        # params (..., 3), x (m,) -> (..., m)
        params = np.asarray(params, dtype=float)
        return params[..., 0, None] - params[..., 1, None] * np.power(x, -params[..., 2, None])

    def check(self, x: np.ndarray, y: np.ndarray) -> None:
        if np.ptp(y) == 0:
            raise FitError("a saturating law needs S to vary; every point has the same S")

    @staticmethod
    def _model(u, s_inf, c, b):
        return s_inf - c * np.power(u, -b)

    @staticmethod
    def _jacobian(u, s_inf, c, b):
        u_neg_b = np.power(u, -b)
        return np.stack([np.ones_like(u), -u_neg_b, c * u_neg_b * np.log(u)], axis=1)  # (n, 3)

    def _bounds(self, y: np.ndarray) -> tuple[list[float], list[float]]:
        span = float(np.ptp(y))
        return (
            [float(y.min()), 0.0, self.b_bounds[0]],
            [float(y.max()) + self.s_inf_headroom * span, np.inf, self.b_bounds[1]],
        )

    def _grid_start(self, u: np.ndarray, y: np.ndarray, bounds) -> np.ndarray:
        """For fixed b the law is linear in (S∞, c): solve it on a grid of b and keep the best valid one."""
        best, best_sse = None, np.inf
        for b in np.geomspace(0.01, self.b_bounds[1], 60):
            design = np.stack([np.ones_like(u), -np.power(u, -b)], axis=1)  # (n, 2)
            (s_inf, c), *_ = np.linalg.lstsq(design, y, rcond=None)
            if not (c > 0 and bounds[0][0] <= s_inf <= bounds[1][0]):
                continue
            sse = float(((design @ np.array([s_inf, c]) - y) ** 2).sum())
            if sse < best_sse:
                best, best_sse = np.array([s_inf, c, b]), sse
        if best is None:
            raise FitError(
                "saturating fit found no starting point with a > 0 and S∞ within "
                f"[min S, max S + {self.s_inf_headroom:g}·range]: S does not rise towards a ceiling with X "
                "(try --form power)"
            )
        return best

    def _fit_scaled(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        bounds = self._bounds(y)
        start = self._grid_start(u, y, bounds)
        try:
            with warnings.catch_warnings():
                # its covariance is not used: the interval is the cluster-robust one
                warnings.simplefilter("ignore", OptimizeWarning)
                estimate, _ = curve_fit(
                    self._model,
                    u,
                    y,
                    p0=start,
                    bounds=bounds,
                    jac=self._jacobian,
                    method="trf",
                    max_nfev=2000,
                )
        except (RuntimeError, ValueError) as error:
            raise FitError(f"saturating fit did not converge: {error}") from None
        s_inf, c, b = estimate
        span = bounds[1][0] - bounds[0][0]
        if not np.all(np.isfinite(estimate)):
            raise FitError("saturating fit did not converge: non-finite parameters")
        if bounds[1][0] - s_inf < 1e-6 * span:
            raise FitError(
                f"saturating fit failed: S∞ ran to its upper bound (max S + {self.s_inf_headroom:g}·range "
                f"= {bounds[1][0]:.6g}); the points show no ceiling (try --form power)"
            )
        if c <= 1e-12 * span:
            raise FitError("saturating fit failed: a went to 0, S does not rise with X")
        if not (self.b_bounds[0] * (1 + 1e-6) < b < self.b_bounds[1] * (1 - 1e-6)):
            raise FitError(
                f"saturating fit failed: the exponent b ran to its bound {b:.4g} "
                f"(allowed {self.b_bounds[0]:g}..{self.b_bounds[1]:g})"
            )
        return estimate

    def fit(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, _Linearised]:
        x_ref = float(np.exp(np.log(x).mean()))
        u = x / x_ref
        s_inf, c, b = self._fit_scaled(u, y)
        theta = np.array([s_inf, math.log(c), math.log(b)])
        jacobian = self._jacobian(u, s_inf, c, b) * np.array([1.0, c, b])  # chain rule to (S∞, log c, log b)
        residuals = y - self._model(u, s_inf, c, b)
        linearised = _Linearised(theta, jacobian, residuals, self, x_ref=x_ref)
        return np.array([s_inf, c * x_ref**b, b]), linearised

    def param_contrasts(self, theta: np.ndarray, x_ref: float = 1.0) -> list[tuple[float, np.ndarray, Any]]:
        b = math.exp(theta[2])
        log_a = float(theta[1] + b * math.log(x_ref))  # a = c·x_ref^b
        return [
            (float(theta[0]), np.array([1.0, 0.0, 0.0]), _identity),
            (log_a, np.array([0.0, 1.0, b * math.log(x_ref)]), np.exp),
            (float(theta[2]), np.array([0.0, 0.0, 1.0]), np.exp),
        ]

    def prediction(self, theta: np.ndarray, x0: float, x_ref: float = 1.0) -> tuple[float, np.ndarray, Any]:
        s_inf, c, b = theta[0], math.exp(theta[1]), math.exp(theta[2])
        u0 = x0 / x_ref
        u_neg_b = u0**-b
        gradient = np.array([1.0, -c * u_neg_b, c * u_neg_b * math.log(u0) * b])
        return float(s_inf - c * u_neg_b), gradient, _identity


def _identity(value):
    return value


@dataclass(frozen=True, eq=False)
class _Linearised:
    """What the intervals need from a fit: θ, the Jacobian at θ (n, k), residuals (n,) in the fitting space."""

    theta: np.ndarray
    jacobian: np.ndarray
    residuals: np.ndarray
    law: PowerLaw | SaturatingLaw
    x_ref: float = 1.0

    def param_contrasts(self):
        if isinstance(self.law, SaturatingLaw):
            return self.law.param_contrasts(self.theta, self.x_ref)
        return self.law.param_contrasts(self.theta)

    def prediction(self, x0: float):
        if isinstance(self.law, SaturatingLaw):
            return self.law.prediction(self.theta, x0, self.x_ref)
        return self.law.prediction(self.theta, x0)


FORMS: dict[str, PowerLaw | SaturatingLaw] = {law.name: law for law in (PowerLaw(), SaturatingLaw())}


def _law(form: str) -> PowerLaw | SaturatingLaw:
    if form not in FORMS:
        raise UserError(f"unknown law form {form!r}; valid forms: {', '.join(FORMS)}")
    return FORMS[form]


@dataclass(frozen=True)
class Prediction:
    value: float
    lo: float
    hi: float
    df: float
    clipped: bool  # the interval was cut to the metric's range


@dataclass(frozen=True, eq=False)
class Fit:
    """A fitted law: estimate, cluster-robust t intervals, goodness of fit, the points and their clusters."""

    form: str
    estimate: np.ndarray  # (k,) in `param_names` order
    intervals: np.ndarray  # (k, 2) at `ci_level`
    param_df: np.ndarray  # (k,) Bell–McCaffrey df of each interval
    ci_level: float
    r2: float
    rmse: float
    x: np.ndarray  # (n,)
    y: np.ndarray  # (n,)
    clusters: np.ndarray  # (n,) the run (configuration) each point comes from
    linearised: _Linearised
    cov: _Covariance

    @property
    def law(self) -> PowerLaw | SaturatingLaw:
        return FORMS[self.form]

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.law.param_names

    @property
    def params(self) -> dict[str, float]:
        return {name: float(value) for name, value in zip(self.param_names, self.estimate)}

    @property
    def n_clusters(self) -> int:
        return len(set(self.clusters.tolist()))

    @property
    def method(self) -> str:
        return self.cov.method

    def interval(self, name: str) -> tuple[float, float]:
        lo, hi = self.intervals[self.param_names.index(name)]
        return float(lo), float(hi)

    def __call__(self, x) -> np.ndarray:
        return self.law.evaluate(self.estimate, np.asarray(x, dtype=float))

    def render(self, symbol: str = "X") -> str:
        return self.law.render(self.estimate, symbol)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "form": self.form,
            "formula": self.law.formula(),
            "params": {
                name: {
                    "estimate": float(value),
                    "lo": float(self.intervals[i, 0]),
                    "hi": float(self.intervals[i, 1]),
                    "df": float(self.param_df[i]),
                }
                for i, (name, value) in enumerate(zip(self.param_names, self.estimate))
            },
            "ci_level": self.ci_level,
            "interval_method": self.method,
            "r2": None if np.isnan(self.r2) else self.r2,  # NaN when every S is equal; JSON has no NaN
            "rmse": self.rmse,
            "n_points": int(self.x.size),
            "n_runs": self.n_clusters,
        }


def _as_points(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise FitError(f"X and S must be 1-D of one length, got shapes {x.shape} and {y.shape}")
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size:
        raise FitError(f"point {bad[0]} is not finite: X={x[bad[0]]}, S={y[bad[0]]}")
    return x, y


def _check_identified(law, linearised: _Linearised, cov: _Covariance, level: float, y: np.ndarray) -> None:
    """A saturating law whose scale or exponent interval runs over orders of magnitude is not determined by the
    points. The scale is judged at the points' geometric-mean X (c), not as a, which sits at X = 1 and whose
    interval spans orders of magnitude for any law fitted far from X = 1."""
    if not isinstance(law, SaturatingLaw):
        return  # a power law is linear in log space: with 3+ runs it is always identified
    for index, name in ((1, "the scale at the points' mean X"), (2, "the exponent b")):
        contrast = np.eye(3)[index]
        se, df = cov.se_df(contrast)
        half = _t(level, df) * se  # on log scale
        if not math.isfinite(half) or 2 * half > math.log(MAX_IDENTIFIED_RATIO):
            centre = linearised.theta[index]
            raise FitError(
                f"the saturating law is not identified by these points: {name} has the interval "
                f"[{math.exp(centre - half):.3g}, {math.exp(centre + half):.3g}], more than a factor "
                f"{MAX_IDENTIFIED_RATIO:g} wide (try --form power, or add runs)"
            )
    se, df = cov.se_df(np.eye(3)[0])
    half = _t(level, df) * se
    if not math.isfinite(half) or half > law.s_inf_headroom * float(np.ptp(y)):
        centre = linearised.theta[0]
        raise FitError(
            f"the saturating law is not identified by these points: the ceiling S∞ has the interval "
            f"[{centre - half:.3g}, {centre + half:.3g}], far wider than the points' spread (try --form power, or "
            "add runs)"
        )


def fit_law(
    x, y, form: str = "power", clusters: Sequence | None = None, ci_level: float = DEFAULT_CI_LEVEL
) -> Fit:
    """Fit S = f(X) of `form` ("power" or "saturating") with cluster-robust t intervals (see the module note).

    `clusters` names the run (configuration) each point comes from; None: every point its own run. Raises
    `FitError` with the reason when there are too few points, runs or distinct X values, when X ≤ 0, when S ≤ 0
    for a power law, when a saturating fit does not converge, runs to a bound or is not identified.
    """
    law = _law(form)
    x, y = _as_points(x, y)
    clusters = np.arange(x.size).astype(str) if clusters is None else np.asarray([str(c) for c in clusters])
    if clusters.shape != x.shape:
        raise FitError(f"{clusters.size} cluster ids for {x.size} points")
    if x.size < law.min_points:
        raise FitError(
            f"a {form} law has {len(law.param_names)} parameters and needs at least {law.min_points} points, got {x.size}"
        )
    bad = np.flatnonzero(x <= 0)
    if bad.size:
        raise FitError(f"{law.formula()} needs X > 0; point {bad[0]} has X={x[bad[0]]:.6g}")
    n_distinct = np.unique(x).size
    if n_distinct < law.min_distinct_x:
        raise FitError(
            f"a {form} law needs at least {law.min_distinct_x} distinct X values, got {n_distinct}"
        )
    n_clusters = len(set(clusters.tolist()))
    if n_clusters < law.min_points:
        raise FitError(
            f"a {form} law's interval needs points from at least {law.min_points} runs, got {n_clusters} "
            f"({x.size} points): points of one run are not independent"
        )
    law.check(x, y)
    if not 0 < ci_level < 1:
        raise UserError(f"ci_level must lie strictly between 0 and 1, got {ci_level}")

    estimate, linearised = law.fit(x, y)
    residuals = y - law.evaluate(estimate, x)
    total = ((y - y.mean()) ** 2).sum()
    r2 = float(1 - (residuals**2).sum() / total) if total > 0 else float("nan")
    rmse = float(np.sqrt((residuals**2).mean()))

    cov = _Covariance(linearised.jacobian, linearised.residuals, clusters)
    intervals, dfs = [], []
    for centre, gradient, transform in linearised.param_contrasts():
        se, df = cov.se_df(gradient)
        half = _t(ci_level, df) * se
        intervals.append(sorted((float(transform(centre - half)), float(transform(centre + half)))))
        dfs.append(df)
    intervals = np.array(intervals)
    _check_identified(law, linearised, cov, ci_level, y)
    return Fit(form, estimate, intervals, np.array(dfs), ci_level, r2, rmse, x, y, clusters, linearised, cov)


def predict(
    fit: Fit, x_new, value_range: tuple[float, float] = (-math.inf, math.inf), refuse_outside: bool = True
) -> Prediction | list[Prediction]:
    """The fitted law at `x_new` (a number, or a 1-D sequence: a list back) with its interval at the fit's level.

    The interval is a confidence interval for the law's value at X, the mean over runs the law describes; one new
    run would scatter around it by its own seed and prompt noise as well. It is clipped to
    `value_range` (`clipped` says so). A law value outside the range raises `OutOfRange` unless
    `refuse_outside` is False (a plot's band), which then clips the value too.
    """
    x_array = np.atleast_1d(np.asarray(x_new, dtype=float))
    if x_array.ndim != 1 or not np.all(np.isfinite(x_array)) or np.any(x_array <= 0):
        raise UserError(f"predict needs finite X > 0, got {x_new!r}")
    low, high = value_range
    results = []
    for x0 in x_array:
        centre, gradient, transform = fit.linearised.prediction(float(x0))
        se, df = fit.cov.se_df(gradient)
        half = _t(fit.ci_level, df) * se
        value = float(transform(centre))
        lo, hi = sorted((float(transform(centre - half)), float(transform(centre + half))))
        if not low <= value <= high:
            if refuse_outside:
                raise OutOfRange(
                    f"the law predicts {value:.4g} at X = {x0:.4g}, outside the metric's range "
                    f"[{low:g}, {high:g}]: it cannot hold that far from its points (fitted on X from "
                    f"{fit.x.min():.4g} to {fit.x.max():.4g})"
                )
            value = min(max(value, low), high)
        clipped_lo, clipped_hi = min(max(lo, low), high), max(min(hi, high), low)
        results.append(Prediction(value, clipped_lo, clipped_hi, df, (clipped_lo, clipped_hi) != (lo, hi)))
    return results[0] if np.ndim(x_new) == 0 else results

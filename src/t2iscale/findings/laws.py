"""Scaling laws of a study's configurations (paper Sec. 6), as the CLI, the demo and the report show them.

    fit_configurations(configurations, "compute", "tifa") -> LawFit     (raises FitError when no law fits)
    frontier_law(configurations, "compute", "tifa")       -> LawResult  (carries the reason instead)
    study_law(study, "params", "tifa")                    -> LawResult  on the law's scope of a study

A configuration is one point per evaluation (compute) or one final point (params, data), its value the mean over
training seeds. On the compute axis several frontier points come from one configuration, so the fit treats each
configuration as one cluster (`t2iscale.scaling.fits`). Every point carries its own interval and n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.intervals import Estimate
from t2iscale.eval.metrics import metric_info
from t2iscale.findings.arms import StudyConfigurations, law_scope
from t2iscale.scaling.arms import Configuration
from t2iscale.scaling.fits import Fit, FitError, fit_law, predict
from t2iscale.scaling.frontier import pareto_frontier
from t2iscale.scaling.points import AXES, Axis, ScalingPoint, data_axis, resolve_data_measure, scaling_points


@dataclass(frozen=True)
class Band:
    """The fitted law on a grid of X with its interval, clipped to the metric's range."""

    x: np.ndarray  # (m,)
    value: np.ndarray  # (m,)
    lo: np.ndarray  # (m,)
    hi: np.ndarray  # (m,)
    clipped: bool  # some of the band was cut to the metric's range


@dataclass(frozen=True)
class LawResult:
    axis: Axis
    metric: str
    candidates: list[ScalingPoint]  # every (X, S) point of the axis
    frontier: list[ScalingPoint] = field(default_factory=list)  # the points fitted
    fit: Fit | None = None
    reason: str | None = None  # why there is no fit, as a sentence
    estimates: dict[tuple[str, int], Estimate | None] = field(
        default_factory=dict
    )  # (config key, step) -> interval
    n_seeds: dict[str, int] = field(default_factory=dict)  # config key -> training seeds
    level: float = 0.95  # of the law's and the points' intervals
    chance_level: float | None = None  # the metric's chance level: a reference, not a bound
    # Where a study varies other grid axes too: the values they hold in the configurations fitted
    # ("dataset_size = 60000, caption_policy = mix", `t2iscale.findings.arms.law_scope`), and the labels of
    # the evaluated configurations left out.
    scope: str | None = None
    scope_left_out: tuple[str, ...] = ()

    @property
    def points(self) -> list[ScalingPoint]:
        return self.frontier

    def band(self, points: int = 100) -> Band | None:
        """The law over the X range it was fitted on (no extrapolation drawn)."""
        if self.fit is None:
            return None
        xs = [p.x for p in self.frontier]
        x = np.geomspace(min(xs), max(xs), points)
        predictions = predict(self.fit, x, metric_info(self.metric).value_range, refuse_outside=False)
        return Band(
            x=x,
            value=np.array([p.value for p in predictions]),
            lo=np.array([p.lo for p in predictions]),
            hi=np.array([p.hi for p in predictions]),
            clipped=any(p.clipped for p in predictions),
        )

    def point_dicts(self) -> list[dict]:
        rows = []
        for p in self.frontier:
            estimate = self.estimates.get((p.run_id, p.step))
            rows.append(
                {
                    "configuration": p.run_id,
                    "label": p.label,
                    "step": p.step,
                    "x": p.x,
                    "value": p.value,
                    "n_seeds": self.n_seeds.get(p.run_id, 1),
                    "interval": None if estimate is None else estimate.to_dict(),
                }
            )
        return rows

    def to_dict(self) -> dict:
        scope = {"scope": self.scope, "scope_left_out": list(self.scope_left_out)} if self.scope else {}
        if self.fit is None:
            return {"axis": self.axis.name, "metric": self.metric, "error": self.reason, **scope}
        return {
            "axis": self.axis.name,
            "symbol": self.axis.symbol,
            "x_description": self.axis.description,
            "metric": self.metric,
            "law": self.fit.render(self.axis.symbol),
            **self.fit.to_dict(),
            "n_candidate_points": len(self.candidates),
            "points": self.point_dicts(),
            **scope,
        }

    def scope_text(self) -> str | None:
        """'fitted where dataset_size = 60000, caption_policy = mix (4 configurations left out)', or None."""
        if not self.scope:
            return None
        left = len(self.scope_left_out)
        return f"fitted where {self.scope}" + (
            f" ({left} configuration{'s' * (left != 1)} at other values left out)" if left else ""
        )

    def text_lines(self) -> list[str]:
        """`t2iscale fit`'s text: the law, each parameter's interval, the fit's quality, the points used."""
        fit, symbol = self.fit, self.axis.symbol
        lines = [
            f"{fit.render(symbol)}    ({fit.form} law, {self.metric} vs {symbol} = {self.axis.description})"
        ]
        for name in fit.param_names:
            lo, hi = fit.interval(name)
            lines.append(f"  {name:<6} {fit.params[name]:<12.6g} {fit.ci_level:.0%} CI [{lo:.4g}, {hi:.4g}]")
        lines.append(
            f"  R² {fit.r2:.4f}   RMSE {fit.rmse:.4g}   fit on {len(self.frontier)} points of "
            f"{fit.n_clusters} configurations ({len(self.candidates)} candidates)"
        )
        lines.append(f"  intervals: {fit.method}")
        if self.scope_text():
            lines.append(f"  {self.scope_text()}")
        lines.append(
            f"points used (value: mean over training seeds, {self.level:.0%} interval over prompts and seeds):"
        )
        lines.append(f"  {'configuration':<28} {'step':>7} {symbol:>11} {'seeds':>5}  value")
        for row in self.point_dicts():
            interval = row["interval"]
            value = (
                f"{row['value']:.4f} (no interval)"
                if interval is None
                else f"{interval['value']:.4f} [{interval['lo']:.4f}, {interval['hi']:.4f}]"
            )
            lines.append(
                f"  {row['label']:<28} {row['step']:>7} {row['x']:>11.4g} {row['n_seeds']:>5}  {value}"
            )
        return lines


def _candidates(
    configurations: Sequence[Configuration], axis: str, data_measure: str | None = None
) -> list[ScalingPoint]:
    return scaling_points([c.as_curve() for c in configurations], axis, data_measure)


def frontier_law(
    configurations: Sequence[Configuration],
    axis: str,
    metric: str,
    form: str = "power",
    frontier: bool | None = None,
    level: float = 0.95,
    chance_level: float | None = None,
    data_measure: str | None = None,
) -> LawResult:
    """The law on `axis` ("compute", "params" or "data"). A study that cannot support it gives a LawResult with
    `reason` instead of raising. On the data axis D is counted as `data_measure` (`t2iscale.scaling.points.
    DATA_MEASURES`; None: image-noun pairs where every run has them, else the dataset size in images), and the
    result's `axis.description` says which.

    `frontier` None: on the Pareto frontier for compute, as the paper fits S = a·C^b (the best alignment any
    configuration reached with that much compute), on every configuration for params and data. There a
    frontier keeps only the configurations that beat every smaller one, which biases the exponent upwards and
    its interval's coverage down (0.86-0.90 for 8 points in a simulation with 3-5% noise, against 0.93-0.95 on
    every point)."""
    spec = AXES[axis]
    if axis == "data":
        try:
            data_measure = resolve_data_measure([c.as_curve() for c in configurations], data_measure)
        except UserError as error:
            return LawResult(
                spec, metric, [], reason=f"No D points: {error}.", level=level, chance_level=chance_level
            )
        spec = data_axis(data_measure)
    if frontier is None:
        frontier = axis == "compute"
    info = metric_info(metric)
    context = {"level": level, "chance_level": chance_level}
    try:
        candidates = _candidates(configurations, axis, data_measure)
    except UserError as error:
        return LawResult(spec, metric, [], reason=f"No {spec.symbol} points: {error}.", **context)
    if not info.higher_is_better:
        return LawResult(
            spec,
            metric,
            candidates,
            reason=f"No Pareto frontier or power law: {metric!r} is lower-is-better, the fits assume higher is better.",
            **context,
        )
    if axis == "data" and len({p.x for p in candidates}) < 2:
        sizes = sorted({p.x for p in candidates})
        # D's unit is the measure's (image-noun pairs, images, images seen), so say it: "one D of 73,786"
        # alone read as a dataset of 73,786 images.
        unit = spec.description.split(",")[0]
        what = f"all have D = {sizes[0]:,.0f} ({unit})" if sizes else f"have no D ({unit})"
        return LawResult(
            spec, metric, candidates, reason=f"No data scaling: the evaluated runs {what}.", **context
        )
    points = (
        pareto_frontier(candidates) if frontier else sorted(candidates, key=lambda p: (p.x, p.run_id, p.step))
    )
    by_key = {c.key: c for c in configurations}
    estimates = {
        (p.run_id, p.step): by_key[p.run_id].estimate(p.step, level, info.value_range) for p in points
    }
    n_seeds = {c.key: c.n_seeds for c in configurations}
    try:
        fit = fit_law(
            [p.x for p in points],
            [p.value for p in points],
            form,
            clusters=[p.run_id for p in points],
            ci_level=level,
        )
    except FitError as error:
        which = "Pareto-frontier points" if frontier else "points"
        reason = f"{form} law on {len(points)} {which} (of {len(candidates)}) on {spec.symbol}: {error}"
        return LawResult(
            spec, metric, candidates, points, reason=reason, estimates=estimates, n_seeds=n_seeds, **context
        )
    return LawResult(spec, metric, candidates, points, fit, estimates=estimates, n_seeds=n_seeds, **context)


def fit_configurations(
    configurations: Sequence[Configuration],
    axis: str,
    metric: str,
    form: str = "power",
    frontier: bool | None = None,
    level: float = 0.95,
    chance_level: float | None = None,
    data_measure: str | None = None,
) -> LawResult:
    """`frontier_law` for the CLI: a law that cannot be fitted is a FitError naming why."""
    law = frontier_law(configurations, axis, metric, form, frontier, level, chance_level, data_measure)
    if law.fit is None:
        raise FitError(law.reason.rstrip("."))
    return law


def study_law(
    study: StudyConfigurations, axis: str, metric: str, where: dict[str, str] | None = None, **options
) -> LawResult:
    """`frontier_law` on the configurations of `study` (a `t2iscale.findings.arms.StudyConfigurations`) that
    differ only along the law's axis (`law_scope`; `where` picks another group); the result says which."""
    scope = law_scope(study, axis, where)
    law = frontier_law(scope.configurations, axis, metric, **options)
    return replace(law, scope=scope.text(), scope_left_out=tuple(scope.left_out))

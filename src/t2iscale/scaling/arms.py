"""Configurations (runs pooled over training seeds) and arms (what a finding compares). Torch-free.

A *configuration* is a set of runs that differ only in the training seed: one backbone, one dataset, one
caption policy. Its value at a step is the mean over its runs, with an interval over seeds and prompts
(`t2iscale.eval.intervals`). Scaling fits and correlations use configurations, one point each, and carry
their seed counts.

An *arm* is the set of configurations that share one level of a compared factor (DESIGN.md, "Findings"): one
configuration when the factor is a grid axis (the `alt` arm of a caption ablation), or a ladder of several when
it is derived (the SDXL-layout arm of a layout comparison holds every SDXL backbone). Along an axis X an arm is
a curve of points (X, evaluation):

- one configuration: its evaluations along training, X = step or training FLOPs; or its single N;
- a ladder: one point per configuration, its final evaluation, X = final training FLOPs or N.

`Arm.at` reads the curve at any X inside its range by interpolating linearly in log X between the two
neighbouring points, sample by sample, so the pairing by prompt and eval seed survives. It never extrapolates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from t2iscale.errors import UserError
from t2iscale.eval.intervals import DEFAULT_LEVEL, Estimate, replicate_estimate
from t2iscale.eval.samples import SampleScores
from t2iscale.scaling.points import Curve

MATCH_AXES = ("step", "compute", "params")
# Training FLOPs of two seeds of one configuration agree to rounding; more than this is a different model.
_FLOPS_RTOL = 1e-6


class NotComparable(UserError):
    """Two arms cannot be read at one X without extrapolating (or the axis does not apply); says why."""


@dataclass(frozen=True, eq=False)
class Configuration:
    """Replicate runs (training seeds) of one configuration; `key` identifies it, `label` is for people."""

    key: str
    label: str
    runs: tuple[Curve, ...]

    def __post_init__(self):
        runs = tuple(self.runs)
        object.__setattr__(self, "runs", runs)
        if not runs:
            raise UserError(f"configuration {self.label!r}: no runs")
        if len({run.params for run in runs}) > 1:
            raise UserError(
                f"configuration {self.label!r}: runs {runs[0].run_id!r} and others differ in parameters; "
                "replicates differ only in the training seed"
            )
        if not self.steps:
            raise UserError(f"configuration {self.label!r}: its runs share no evaluated step")

    @property
    def n_seeds(self) -> int:
        return len(self.runs)

    @property
    def params(self) -> int | None:
        return self.runs[0].params

    @property
    def steps(self) -> tuple[int, ...]:
        """The steps every run evaluated (a run cut short by divergence ends the configuration there)."""
        shared = set(self.runs[0].steps).intersection(*(run.steps for run in self.runs[1:]))
        return tuple(sorted(shared))

    @property
    def final_step(self) -> int:
        return self.steps[-1]

    def _index(self, run: Curve, step: int) -> int:
        return run.steps.index(step)

    def train_flops(self, step: int) -> float:
        values = [run.train_flops[self._index(run, step)] for run in self.runs]
        if max(values) - min(values) > _FLOPS_RTOL * max(values):
            raise UserError(
                f"configuration {self.label!r}: its runs record different training FLOPs at step {step} "
                f"({min(values):.6g} vs {max(values):.6g}); replicates differ only in the training seed"
            )
        return values[0]

    def value(self, step: int) -> float:
        """Mean over runs of the recorded metric value at `step`."""
        return sum(run.values[self._index(run, step)] for run in self.runs) / self.n_seeds

    def samples(self, step: int) -> list[SampleScores]:
        """Each run's per-sample scores at `step`; UserError when a run did not keep them."""
        found = []
        for run in self.runs:
            entry = run.samples_at(self._index(run, step))
            if entry is None:
                raise UserError(
                    f"run {run.run_id!r} has no per-sample scores at step {step} (evaluated before they were "
                    "kept); re-evaluate it to get intervals"
                )
            found.append(entry)
        return found

    def has_samples(self, step: int) -> bool:
        return all(run.samples_at(self._index(run, step)) is not None for run in self.runs)

    def estimate(
        self,
        step: int,
        level: float = DEFAULT_LEVEL,
        value_range: tuple[float, float] = (-math.inf, math.inf),
        category: str | None = None,
    ) -> Estimate | None:
        """The value at `step` (of one prompt category's prompts, with `category`) with its interval; None when
        the runs kept no per-sample scores there."""
        if not self.has_samples(step):
            return None
        samples = self.samples(step)
        if category is not None:
            samples = [entry.only_category(category) for entry in samples]
        return replicate_estimate(samples, level, value_range)

    def as_curve(self) -> Curve:
        """The mean curve over the runs at their shared steps (one point per step; `n_seeds` recorded)."""
        first = self.runs[0]
        steps = self.steps
        return Curve(
            run_id=self.key,
            label=self.label,
            params=first.params,
            gmacs=first.gmacs,
            dataset_noun_pairs=first.dataset_noun_pairs,
            steps=steps,
            images_seen=[first.images_seen[self._index(first, step)] for step in steps],
            train_flops=[self.train_flops(step) for step in steps],
            values=[self.value(step) for step in steps],
            metric=first.metric,
            category={
                name: [
                    sum(run.category[name][self._index(run, step)] for run in self.runs) / self.n_seeds
                    for step in steps
                ]
                for name in set(first.category).intersection(*(run.category for run in self.runs[1:]))
            },
            n_seeds=self.n_seeds,
            dataset_images=first.dataset_images,
        )


@dataclass(frozen=True)
class Reading:
    """One configuration's evaluation at `step`, weighted: an arm at X is a sum of these."""

    weight: float
    configuration: Configuration
    step: int


@dataclass(frozen=True, eq=False)
class Arm:
    """The configurations that share one level of a compared factor."""

    name: str
    configurations: tuple[Configuration, ...]

    def __post_init__(self):
        object.__setattr__(self, "configurations", tuple(self.configurations))
        if not self.configurations:
            raise UserError(f"arm {self.name!r} holds no runs")

    @property
    def is_ladder(self) -> bool:
        return len(self.configurations) > 1

    @property
    def n_runs(self) -> int:
        return sum(c.n_seeds for c in self.configurations)

    def points(self, axis: str) -> list[tuple[float, Configuration, int]]:
        """(X, configuration, step) along `axis`, sorted by X; X > 0 only (the curve is read in log X)."""
        if axis not in MATCH_AXES:
            raise UserError(f"unknown axis {axis!r}; valid axes: {', '.join(MATCH_AXES)}")
        if axis == "params":
            points = []
            for c in self.configurations:
                if c.params is None:
                    raise NotComparable(
                        f"configuration {c.label!r} of arm {self.name!r} has no parameter count"
                    )
                points.append((float(c.params), c, c.final_step))
        elif self.is_ladder:
            if axis == "step":
                raise NotComparable(
                    f"arm {self.name!r} spans {len(self.configurations)} backbones, which differ in compute per "
                    "step: compare it at matched compute or parameters"
                )
            points = [(c.train_flops(c.final_step), c, c.final_step) for c in self.configurations]
        else:
            (c,) = self.configurations
            x_of = (lambda step: float(step)) if axis == "step" else c.train_flops
            points = [(x_of(step), c, step) for step in c.steps]
        points = sorted((p for p in points if p[0] > 0), key=lambda p: p[0])
        xs = [p[0] for p in points]
        if len(set(xs)) != len(xs):
            raise NotComparable(
                f"two configurations of arm {self.name!r} sit at the same {axis}: its curve along {axis} is not "
                "defined"
            )
        return points

    def span(self, axis: str) -> tuple[float, float]:
        points = self.points(axis)
        if not points:
            raise NotComparable(f"arm {self.name!r} has no evaluation with {axis} > 0")
        return points[0][0], points[-1][0]

    def at(self, axis: str, x: float) -> list[Reading]:
        """The arm's curve at X = `x`, interpolated linearly in log X between its neighbouring points."""
        points = self.points(axis)
        for value, configuration, step in points:
            if math.isclose(value, x, rel_tol=1e-9):
                return [Reading(1.0, configuration, step)]
        for (x0, c0, s0), (x1, c1, s1) in zip(points, points[1:]):
            if x0 < x < x1:
                weight = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
                return [Reading(1.0 - weight, c0, s0), Reading(weight, c1, s1)]
        low, high = self.span(axis)
        raise NotComparable(
            f"arm {self.name!r} spans {axis} {low:.4g}..{high:.4g}, not {x:.4g}: no extrapolation"
        )


def describe_readings(readings: Sequence[Reading], axis: str) -> str:
    """How an arm was read: `sdxl-c8 at step 900` or `0.42 × sdxl-c8 (step 1800) + 0.58 × sdxl-c12 (step 1800)`."""
    if len(readings) == 1:
        reading = readings[0]
        return f"{reading.configuration.label} at step {reading.step}"
    return (
        " + ".join(f"{r.weight:.2f} × {r.configuration.label} (step {r.step})" for r in readings)
        + f", interpolated in log {axis}"
    )

"""Everything the report shows about a study, read once through `t2iscale.study.results` and `t2iscale.findings`.

The report reads the study database only through those APIs (`load_runs`, `study_metrics`, `load_curves`) and
`t2iscale.findings.arms.study_configurations` (the runs of the report metric pooled over training seeds, which
the laws and correlations use); from the run folders it points at it reads what the database does not hold: the
metric's chance level (in `eval/eval.jsonl`) and the sample images (see `samples`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2iscale.errors import UserError
from t2iscale.scaling.arms import Configuration
from t2iscale.scaling.points import Curve
from t2iscale.train.jsonl import read_jsonl
from t2iscale.train.run_dir import RunDir


@dataclass(frozen=True)
class StudyData:
    study_dir: Path
    metric: str  # the metric the plots and fits use
    metrics: list[str]  # every metric the study has evaluated
    runs: list[Any]  # t2iscale.study.results.RunRecord, ordered by parameters (unknown last), then run id
    curves: list[Curve]  # the report metric's curves, same order; runs without evaluations have none
    curves_by_metric: dict[str, list[Curve]]
    chance_level: float | None  # of `metric` on the study's prompt set (same prompts for every run)
    # `metric`'s evaluated runs pooled over training seeds, ordered by parameters like `runs`
    configurations: list[Configuration]

    @property
    def configuration_curves(self) -> list[Curve]:
        """One mean curve per configuration (run id = the configuration's key), in `configurations` order."""
        return [configuration.as_curve() for configuration in self.configurations]

    def run(self, run_id: str):
        return next((run for run in self.runs if run.run_id == run_id), None)

    def final_value(self, run_id: str, metric: str) -> float | None:
        curve = next((c for c in self.curves_by_metric.get(metric, []) if c.run_id == run_id), None)
        return None if curve is None else curve.final_value

    def last_evaluated_step(self, run_id: str) -> int | None:
        steps = [
            c.final_step for curves in self.curves_by_metric.values() for c in curves if c.run_id == run_id
        ]
        return max(steps) if steps else None

    def status_counts(self) -> dict[str, int]:
        return dict(Counter(run.status for run in self.runs))


def size_order(params: int | None, run_id: str) -> tuple:
    """Smallest model first; runs whose size is unknown go last."""
    return (params is None, params or 0, run_id)


def chance_level(runs, metric: str) -> float | None:
    """The chance level the scorer logged for `metric` (TIFA: expected accuracy of uniform guessing)."""
    for run in runs:
        records = read_jsonl(RunDir(run.run_dir).eval_log)
        levels = [r["chance_level"] for r in records if r.get("metric") == metric and "chance_level" in r]
        if levels:
            return float(levels[-1])
    return None


def collect_study(study_dir: str | Path, metric: str = "tifa") -> StudyData:
    """Read a study for the report; a UserError when there is nothing to report on."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise UserError(f"study folder {str(study_dir)!r} does not exist")
    from t2iscale.findings.arms import study_configurations
    from t2iscale.findings.curves import load_curves
    from t2iscale.study import results

    runs = sorted(results.load_runs(study_dir), key=lambda run: size_order(run.params, run.run_id))
    metrics = list(results.study_metrics(study_dir))
    if not metrics:
        statuses = ", ".join(f"{n} {status}" for status, n in Counter(r.status for r in runs).items())
        raise UserError(
            f"study {str(study_dir)!r} has no evaluations yet ({len(runs)} runs: {statuses or 'none'}); "
            "the report needs at least one evaluated step (set eval.every_steps in the study's recipe)"
        )
    if metric not in metrics:
        raise UserError(
            f"study {str(study_dir)!r} has no evaluations of metric {metric!r}; "
            f"its metrics: {', '.join(metrics)} (choose one with --metric)"
        )
    order = {run.run_id: i for i, run in enumerate(runs)}
    curves_by_metric = {}
    for name in metrics:
        curves = load_curves(study_dir, name)
        curves_by_metric[name] = sorted(
            curves, key=lambda c: (order.get(c.run_id, len(order)), *size_order(c.params, c.run_id))
        )
    if not curves_by_metric[metric]:
        raise UserError(f"study {str(study_dir)!r} has no evaluated run for metric {metric!r}")
    return StudyData(
        study_dir=study_dir,
        metric=metric,
        metrics=metrics,
        runs=runs,
        curves=curves_by_metric[metric],
        curves_by_metric=curves_by_metric,
        chance_level=chance_level(runs, metric),
        configurations=sorted(
            study_configurations(study_dir, metric).configurations,
            key=lambda c: size_order(c.params, c.label),
        ),
    )

"""Everything the report shows about a study, read once through `t2iscale.study.results` and `t2iscale.findings`.

The report reads the study database only through those APIs (`load_runs`, `study_metrics`, `load_curves`),
`t2iscale.findings.arms.study_configurations` (the runs of the report metric pooled over training seeds, which
the laws, correlations and findings use) and the registry's stored spec and timestamps (provenance). From the run
folders it points at it reads what the database does not hold: the metric's chance level (`eval/eval.jsonl`), the
training log (`metrics.jsonl`: loss, learning rate, images/s, MFU), the run's status message (the device MFU is
measured against) and the sample images (see `samples`). From the study folder: `summary.json` when a driver
such as `t2iscale demo` wrote one (its bars go in the headline).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
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
    spec: dict | None = None  # the study spec as the registry stored it
    created_at: float | None = None  # when the study was first registered (epoch seconds)
    run_times: dict[str, tuple[float | None, float | None]] = field(
        default_factory=dict
    )  # run id -> start, end
    logs: dict[str, RunLog] = field(default_factory=dict)  # run id -> its training log (runs that logged)
    summary: dict | None = None  # <study>/summary.json, when a driver (t2iscale demo) wrote one
    left_out: list[str] = field(default_factory=list)  # runs without an evaluation of `metric`
    study: Any = None  # t2iscale.findings.arms.StudyConfigurations of `metric` (what `compare` reads)

    @property
    def factors(self) -> list[str]:
        """The factors the study's spec declares it compares (`factors = [...]`), in its order."""
        return list((self.spec or {}).get("factors") or [])

    @property
    def name(self) -> str:
        return str((self.spec or {}).get("name") or self.study_dir.resolve().name)

    def config(self) -> dict:
        """A run's resolved config (every run shares the recipe; grid axes differ), {} without runs."""
        return self.runs[0].config if self.runs else {}

    def configuration_of(self, run_id: str) -> Configuration | None:
        return next((c for c in self.configurations if any(r.run_id == run_id for r in c.runs)), None)

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


SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class RunLog:
    """A run's `metrics.jsonl` as columns, one entry per logged step (NaN where a record lacks a field).

    The logged loss is the mean over the steps since the previous log line; images/s and MFU are measured over
    the same window."""

    steps: tuple[int, ...]
    train_flops: tuple[float, ...]
    loss: tuple[float, ...]
    lr: tuple[float, ...]
    images_per_s: tuple[float, ...]
    mfu: tuple[float, ...]
    status_message: str = ""  # status.json's message (names the peak FLOP/s MFU is measured against)

    @property
    def final_loss(self) -> float | None:
        finite = [value for value in self.loss if math.isfinite(value)]
        return finite[-1] if finite else None

    @property
    def final_train_flops(self) -> float | None:
        finite = [value for value in self.train_flops if math.isfinite(value)]
        return finite[-1] if finite else None


def _column(records: list[dict], key: str) -> tuple[float, ...]:
    values = []
    for record in records:
        value = record.get(key)
        values.append(
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
        )
    return tuple(values)


def read_run_log(run_dir: Path) -> RunLog | None:
    """The run's training log; None when it has logged nothing yet. A resumed run's repeated steps keep the
    last record of each step."""
    run = RunDir(run_dir)
    by_step: dict[int, dict] = {}
    for record in read_jsonl(run.metrics_file):
        if isinstance(record.get("step"), int):
            by_step[record["step"]] = record
    if not by_step:
        return None
    records = [by_step[step] for step in sorted(by_step)]
    try:
        message = str(run.read_status().get("message") or "")
    except (OSError, ValueError):
        message = ""
    return RunLog(
        steps=tuple(sorted(by_step)),
        train_flops=_column(records, "train_flops"),
        loss=_column(records, "loss"),
        lr=_column(records, "lr"),
        images_per_s=_column(records, "images_per_s"),
        mfu=_column(records, "mfu"),
        status_message=message,
    )


def read_summary(study_dir: Path) -> dict | None:
    """`<study>/summary.json` (written by `t2iscale demo`), None when absent or unreadable."""
    path = study_dir / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _registry_facts(study_dir: Path) -> tuple[dict | None, float | None, dict]:
    """The stored spec, the study's creation time and each run's start and finish time."""
    from t2iscale.study.registry import StudyRegistry

    with StudyRegistry(study_dir) as registry:
        spec = registry.stored_spec()
        row = registry.connection.execute("SELECT value FROM study WHERE key = 'created_at'").fetchone()
        times = {run["run_id"]: (run.get("started_at"), run.get("finished_at")) for run in registry.runs()}
    created = float(row[0]) if row else None
    return spec, created, times


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
    study = study_configurations(study_dir, metric)
    spec, created_at, run_times = _registry_facts(study_dir)
    logs = {run.run_id: log for run in runs if (log := read_run_log(run.run_dir)) is not None}
    return StudyData(
        study_dir=study_dir,
        metric=metric,
        metrics=metrics,
        runs=runs,
        curves=curves_by_metric[metric],
        curves_by_metric=curves_by_metric,
        chance_level=chance_level(runs, metric),
        configurations=sorted(study.configurations, key=lambda c: size_order(c.params, c.label)),
        spec=spec,
        created_at=created_at,
        run_times=run_times,
        logs=logs,
        summary=read_summary(study_dir),
        left_out=list(study.left_out),
        study=study,
    )

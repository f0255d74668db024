"""The read API of a study's results, for `t2iscale.findings` (which turns them into curves) and the report.

    load_runs(study_dir)              -> [RunRecord]   every run, in grid order
    load_evaluations(study_dir, "tifa") -> {run id: [Evaluation]}  each run's evaluations of the metric, with
                                                       per-image scores where they were kept
    study_metrics(study_dir)          -> ["tifa", ...] metrics present in the evaluations table
    load_chance_level(study_dir, "tifa") -> float | None  the metric's chance level, if the scorer gives one

Everything comes from `<study_dir>/study.sqlite` (run `t2iscale study sync DIR` first to pick up results written
by jobs that could not reach the database). Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from t2iscale.study.registry import StudyRegistry

GRID_AXES = (
    ("backbone", "backbones"),
    ("dataset_size", "dataset_sizes"),
    ("caption_policy", "caption_policies"),
    ("seed", "seeds"),
)


@dataclass
class RunRecord:
    run_id: str
    backbone: str
    family: str
    params: int
    gmacs: float
    dataset_size: int | None
    caption_policy: str
    seed: int
    dataset_noun_pairs: int | None
    status: str
    run_dir: Path
    config: dict  # the run's resolved TrainConfig as a dict
    images_per_s: float | None
    elapsed_s: float | None


def load_runs(study_dir: str | Path) -> list[RunRecord]:
    study_dir = Path(study_dir)
    with StudyRegistry(study_dir) as registry:
        rows = registry.runs()
    records = []
    for row in rows:
        run_dir = study_dir / row["run_dir"]
        records.append(
            RunRecord(
                run_id=row["run_id"],
                backbone=row["backbone"],
                family=row["family"],
                params=row["params"],
                gmacs=row["gmacs"],
                dataset_size=row["dataset_size"],
                caption_policy=row["caption_policy"],
                seed=row["seed"],
                dataset_noun_pairs=row["dataset_noun_pairs"],
                status=row["status"],
                run_dir=run_dir,
                config={**json.loads(row["config"]), "run_dir": str(run_dir)},
                images_per_s=row["images_per_s"],
                elapsed_s=row["elapsed_s"],
            )
        )
    return records


def run_label(record: RunRecord, varying: list[str]) -> str:
    """A short legend label: the grid axes that vary in this study (the backbone when none does)."""
    parts = []
    for axis in varying:
        value = getattr(record, axis)
        parts.append(
            {"dataset_size": f"n={value}", "seed": f"seed {value}"}.get(axis, str(value))
            if value is not None
            else "all"
        )
    return " · ".join(parts) if parts else record.backbone


def varying_axes(records: list[RunRecord]) -> list[str]:
    return [axis for axis, _ in GRID_AXES if len({getattr(record, axis) for record in records}) > 1]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of one metric of one run, as the study database holds it."""

    step: int
    images_seen: int | None
    train_flops: float | None
    value: float
    categories: dict[str, float]  # per-category values (GenEval's categories in the shapes world)
    samples: dict | None  # per-image scores (`t2iscale.eval.samples.SampleScores` JSON), None when not kept


def load_evaluations(study_dir: str | Path, metric: str = "tifa") -> dict[str, list[Evaluation]]:
    """run id -> its evaluations of `metric`, by step; a non-finite value (stored as NULL) is left out."""
    with StudyRegistry(study_dir) as registry:
        rows = registry.evaluations(metric)
    by_run: dict[str, list[Evaluation]] = {}
    for row in sorted(rows, key=lambda row: (row["run_id"], row["step"])):
        if row["value"] is None:
            continue
        by_run.setdefault(row["run_id"], []).append(
            Evaluation(
                step=row["step"],
                images_seen=row["images_seen"],
                train_flops=row["train_flops"],
                value=row["value"],
                categories=json.loads(row["categories"] or "{}"),
                samples=None if row["samples"] is None else json.loads(row["samples"]),
            )
        )
    return by_run


def load_chance_level(study_dir: str | Path, metric: str = "tifa") -> float | None:
    """The chance level the scorer recorded for `metric` (TIFA: expected score of uniform guessing), if any.

    The runs of a study share one prompt set, so any evaluation's record serves."""
    with StudyRegistry(study_dir) as registry:
        levels = [
            row["chance_level"] for row in registry.evaluations(metric) if row["chance_level"] is not None
        ]
    return float(levels[-1]) if levels else None


def study_metrics(study_dir: str | Path) -> list[str]:
    with StudyRegistry(study_dir) as registry:
        return registry.metrics()

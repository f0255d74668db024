"""The read API of a study's results, for the report and the scaling fits (`t2iscale fit --study DIR`).

    load_runs(study_dir)              -> [RunRecord]   every run, in grid order
    load_curves(study_dir, "tifa")    -> [Curve]       one per run that has evaluations of the metric, with
                                                       per-image scores (`Curve.samples`) where they were kept
    study_metrics(study_dir)          -> ["tifa", ...] metrics present in the evaluations table
    load_chance_level(study_dir, "tifa") -> float | None  the metric's chance level, if the scorer gives one

Everything comes from `<study_dir>/study.sqlite` (run `t2iscale study sync DIR` first to pick up results written
by jobs that could not reach the database). Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from t2iscale.scaling.points import Curve
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


def load_curves(study_dir: str | Path, metric: str = "tifa") -> list[Curve]:
    """One Curve per run with evaluations of `metric`, in grid order; categories and samples aligned with the steps.

    An evaluation without per-image scores (a set statistic such as FID, or one logged before they were kept) has
    None in `samples`; a curve with none at all has `samples=None`.
    """
    records = load_runs(study_dir)
    with StudyRegistry(study_dir) as registry:
        rows = registry.evaluations(metric)
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    varying = varying_axes(records)
    curves = []
    for record in records:
        # A non-finite value (stored as NULL) is no point on a curve.
        evaluations = sorted(
            (row for row in by_run.get(record.run_id, []) if row["value"] is not None),
            key=lambda row: row["step"],
        )
        if not evaluations:
            continue
        categories = [json.loads(row["categories"] or "{}") for row in evaluations]
        # Only categories evaluated at every step can be curves aligned with the steps.
        shared = set(categories[0]).intersection(*categories[1:]) if categories else set()
        curves.append(
            Curve(
                run_id=record.run_id,
                label=run_label(record, varying),
                params=record.params,
                gmacs=record.gmacs,
                dataset_noun_pairs=record.dataset_noun_pairs,
                steps=[row["step"] for row in evaluations],
                images_seen=[row["images_seen"] for row in evaluations],
                train_flops=[row["train_flops"] for row in evaluations],
                values=[row["value"] for row in evaluations],
                metric=metric,
                category={name: [values[name] for values in categories] for name in sorted(shared)},
                samples=[
                    None if row["samples"] is None else json.loads(row["samples"]) for row in evaluations
                ],
            )
        )
    return curves


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

"""A study's runs as curves (`t2iscale.scaling.points.Curve`): the data model the statistics compute from.

load_curves(study_dir, "tifa") -> [Curve]  one per run with evaluations of the metric, in grid order, with
                                           categories and per-image scores aligned with the steps
"""

from __future__ import annotations

from pathlib import Path

from t2iscale.scaling.points import Curve
from t2iscale.study.results import load_evaluations, load_runs, run_label, varying_axes


def load_curves(study_dir: str | Path, metric: str = "tifa") -> list[Curve]:
    """One Curve per run with evaluations of `metric`, in grid order; categories and samples aligned with the steps.

    An evaluation without per-image scores (a set statistic such as FID, or one logged before they were kept) has
    None in `samples`; a curve with none at all has `samples=None`.
    """
    records = load_runs(study_dir)
    evaluations = load_evaluations(study_dir, metric)
    varying = varying_axes(records)
    curves = []
    for record in records:
        rows = evaluations.get(record.run_id)
        if not rows:
            continue
        # Only categories evaluated at every step can be curves aligned with the steps.
        shared = set(rows[0].categories).intersection(*(row.categories for row in rows[1:]))
        curves.append(
            Curve(
                run_id=record.run_id,
                label=run_label(record, varying),
                params=record.params,
                gmacs=record.gmacs,
                dataset_noun_pairs=record.dataset_noun_pairs,
                steps=[row.step for row in rows],
                images_seen=[row.images_seen for row in rows],
                train_flops=[row.train_flops for row in rows],
                values=[row.value for row in rows],
                metric=metric,
                category={name: [row.categories[name] for row in rows] for name in sorted(shared)},
                samples=[row.samples for row in rows],
                dataset_images=_dataset_images(record),
            )
        )
    return curves


def _dataset_images(record) -> int | None:
    """The run's training-set size in images: its data.size, or (no cap) every sample of its prepared folder."""
    if record.dataset_size is not None:
        return record.dataset_size
    data = record.config.get("data", {})
    if data.get("kind") == "prepared" and data.get("path"):
        from t2iscale.data.prepared_meta import META_FILE, read_prepared_meta

        if (Path(data["path"]) / META_FILE).is_file():
            return read_prepared_meta(data["path"]).count
    return None

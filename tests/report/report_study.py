"""Tiny real studies for the report tests: runs trained by the real training loop, evaluated along training.

Until `t2iscale.study.results` exists, `standin_results()` offers its API by reading the run folders directly.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import types
from dataclasses import dataclass
from pathlib import Path

from t2iscale.scaling.points import Curve
from t2iscale.train.jsonl import read_jsonl
from t2iscale.train.run_dir import RunDir


def _train_helpers() -> types.ModuleType:
    """tests/train/helpers.py (the tiny training config), loaded by path under a name no other module has."""
    path = Path(__file__).resolve().parents[1] / "train" / "helpers.py"
    spec = importlib.util.spec_from_file_location("report_tests_train_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny_config = _train_helpers().tiny_config

EVAL = {"every_steps": 2, "per_category": 1, "sampler_steps": 2}
BACKBONES = {"small": "sdxl-c8-td1_1", "large": "sdxl-c8-td1_2"}


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
    config: dict
    images_per_s: float | None
    elapsed_s: float | None


def _record(run_dir: Path) -> RunRecord:
    from t2iscale.zoo.accounting import account

    config = json.loads((run_dir / "config.json").read_text())
    accounting = account(config["model"]["backbone"])
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    size = config["data"]["size"]
    return RunRecord(
        run_id=run_dir.name,
        backbone=config["model"]["backbone"],
        family=accounting.family,
        params=accounting.params,
        gmacs=accounting.gmacs,
        dataset_size=size,
        caption_policy=config["data"]["caption_policy"],
        seed=config["seed"],
        dataset_noun_pairs=None if size is None else 3 * size,
        status=RunDir(run_dir).read_status()["status"],
        run_dir=run_dir,
        config=config,
        images_per_s=metrics[-1]["images_per_s"] if metrics else None,
        elapsed_s=12.5 if metrics else None,
    )


def _load_runs(study_dir):
    return [
        _record(path)
        for path in sorted(Path(study_dir, "runs").iterdir())
        if (path / "config.json").is_file()
    ]


def _load_curves(study_dir, metric: str = "tifa") -> list[Curve]:
    curves = []
    for run in _load_runs(study_dir):
        records = [r for r in read_jsonl(RunDir(run.run_dir).eval_log) if r["metric"] == metric]
        if not records:
            continue
        curves.append(
            Curve(
                run_id=run.run_id,
                label=f"{run.run_id} ({run.backbone})",
                params=run.params,
                gmacs=run.gmacs,
                dataset_noun_pairs=run.dataset_noun_pairs,
                steps=[r["step"] for r in records],
                images_seen=[r["images_seen"] for r in records],
                train_flops=[r["train_flops"] for r in records],
                values=[r["value"] for r in records],
                metric=metric,
                category={
                    name: [r["categories"][name] for r in records] for name in records[0]["categories"]
                },
            )
        )
    return curves


def _study_metrics(study_dir) -> list[str]:
    return sorted(
        {r["metric"] for run in _load_runs(study_dir) for r in read_jsonl(RunDir(run.run_dir).eval_log)}
    )


def standin_results() -> types.ModuleType:
    module = types.ModuleType("t2iscale.study.results")
    module.RunRecord = RunRecord
    module.load_runs = _load_runs
    module.load_curves = _load_curves
    module.study_metrics = _study_metrics
    return module


def train_run(study_dir: Path, run_id: str, backbone: str, **sections) -> Path:
    from t2iscale.study.single_run import run_training
    from t2iscale.train.config import validate_config

    run_dir = study_dir / "runs" / run_id
    config = tiny_config(run_dir, model={"backbone": backbone}, eval=EVAL, **sections)
    run_training(validate_config(config), progress=False)
    return run_dir


def mark_failed(study_dir: Path, run_id: str) -> None:
    """As if the run had crashed: its status says failed (the stand-in reads status.json)."""
    RunDir(study_dir / "runs" / run_id).write_status("failed", step=4, message="killed by the test")


def add_unevaluated_run(study_dir: Path, run_id: str, backbone: str) -> None:
    """A run that has started but logged nothing yet: its config and a running status only."""
    from t2iscale.train.config import validate_config

    run = RunDir(study_dir / "runs" / run_id)
    run.create()
    run.config_file.write_text(validate_config(tiny_config(run.path, model={"backbone": backbone})).to_json())
    run.write_status("running", step=0)


def copy_study(study_dir: Path, destination: Path) -> Path:
    """A copy without weights (the report never reads them), for tests that change a study."""
    shutil.copytree(study_dir, destination, ignore=shutil.ignore_patterns("checkpoints", "final"))
    return destination

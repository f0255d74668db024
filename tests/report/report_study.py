"""Tiny real studies for the report tests, made by the real study runner (local executor, in this process):
16 px shapes world, 0.1M-parameter UNets, six steps, evaluated every two steps (images + oracle TIFA). The spec
declares the factor it compares (`factors = ["backbone"]`), as the demo's does."""

from __future__ import annotations

import shutil
from pathlib import Path

from t2iscale.study.plan import load_spec
from t2iscale.study.registry import StudyRegistry
from t2iscale.study.results import load_runs
from t2iscale.study.runner import register_study, run_study

BASE = {
    "data": {"size": 64, "resolution": 16, "world": "tiny"},
    "text": {"dim": 16, "max_length": 12, "layers": 1, "heads": 2},
    "recipe": {"global_batch": 8, "warmup_steps": 2, "lr": 1e-3, "ema_decay": 0.99},
    "budget": {"total_steps": 6, "log_every_steps": 1, "checkpoint_every_steps": 2},
    "eval": {"every_steps": 2, "per_category": 1, "sampler_steps": 2},
}
BACKBONES = {"small": "sdxl-c8-td1_1", "large": "sdxl-c8-td1_2"}  # role in the tests -> zoo name
NEWCOMER = "sdxl-c8-td1_3"  # a grid point added later, never trained


def tiny_spec(backbones: list[str]) -> dict:
    base = {section: dict(values) for section, values in BASE.items()}
    return {
        "name": "report-tiny",
        "factors": ["backbone"],
        "base": base,
        "grid": {"backbones": list(backbones)},
    }


def make_study(study_dir: Path) -> Path:
    report = run_study(tiny_spec(list(BACKBONES.values())), study_dir, progress=False)
    assert report.ok, report.summary()
    return study_dir


def run_ids(study_dir: Path) -> dict[str, str]:
    """Role ("small", "large", "newcomer") -> the run id the study gave that backbone."""
    by_backbone = {run.backbone: run.run_id for run in load_runs(study_dir)}
    roles = {**BACKBONES, "newcomer": NEWCOMER}
    return {role: by_backbone[name] for role, name in roles.items() if name in by_backbone}


def add_pending_run(study_dir: Path) -> str:
    """Extend the grid by one backbone without training it: a run that has started nothing yet."""
    register_study(load_spec(tiny_spec([*BACKBONES.values(), NEWCOMER])), study_dir)
    return run_ids(study_dir)["newcomer"]


def register_only(study_dir: Path) -> Path:
    """A study whose runs are all registered and none trained: nothing evaluated."""
    register_study(load_spec(tiny_spec(list(BACKBONES.values()))), study_dir)
    return study_dir


def mark_failed(study_dir: Path, run_id: str) -> None:
    """As if the run had crashed after its evaluations were recorded (the runner records a crash this way)."""
    with StudyRegistry(study_dir) as registry, registry.transaction() as db:
        db.execute(
            "UPDATE runs SET status = 'failed', error = 'killed by the test' WHERE run_id = ?", (run_id,)
        )


def write_summary(study_dir: Path, bars: dict, **extra) -> Path:
    """A summary.json as `t2iscale demo` writes it (only the keys the report reads)."""
    import json

    path = study_dir / "summary.json"
    path.write_text(json.dumps({"study": str(study_dir), "bars": bars, **extra}, indent=2))
    return path


def copy_study(study_dir: Path, destination: Path) -> Path:
    """A copy without weights (the report never reads them), for tests that change a study."""
    shutil.copytree(study_dir, destination, ignore=shutil.ignore_patterns("checkpoints", "final"))
    return destination

"""One attempt at one run of a study: claim it, train it under a heartbeat, record the outcome, release it.

Every executor goes through here (the local runner, the subprocess runner, and each Slurm job), so the rules are
the same everywhere: a finished run is never trained again, a run held by a live owner is left alone, a run that
raises is recorded as failed (or diverged) and the study goes on, and the run folder's results are imported
into the database before the claim is released.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.study.ownership import Heartbeat, owner_id
from t2iscale.study.registry import StudyRegistry
from t2iscale.train.config import TrainConfig
from t2iscale.train.run_dir import write_json_atomic

ERROR_LOG = "study_error.log"

# What happened to a run in one pass of a runner ("finished": trained to the end now).
OUTCOMES = (
    "finished",
    "failed",
    "diverged",
    "already finished",
    "running elsewhere",
    "skipped diverged",
    "queued",
)


class RunDiverged(UserError):
    """A run stopped because its loss became non-finite (raised where the training loop's own error is not
    available, e.g. from a subprocess)."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    outcome: str  # one of OUTCOMES
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "diverged", "skipped diverged")


def run_config(study_dir: Path, row: dict) -> TrainConfig:
    """The run's TrainConfig with an absolute run_dir under the study folder as it is now (it may have moved)."""
    return TrainConfig.model_validate(
        {**json.loads(row["config"]), "run_dir": str((study_dir / row["run_dir"]).absolute())}
    )


def write_run_config(config: TrainConfig) -> Path:
    """`<run>/config.json`, what `t2iscale train --config` reads (the training loop writes it again at start)."""
    folder = Path(config.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    write_json_atomic(path, config.model_dump(mode="json"))
    return path


def refresh_sizes(registry: StudyRegistry, row: dict, config: TrainConfig) -> None:
    """Sizes registered before prepared data existed assumed the paper setting; now the data is there."""
    if not row.get("size_note"):
        return
    from t2iscale.study.plan import PlannedRun, run_accounting

    planned = PlannedRun(row["run_id"], row["position"], row["config_hash"], json.loads(row["config"]))
    accounting, note = run_accounting(planned)
    registry.update_sizes(
        row["run_id"],
        {
            "params": accounting.params,
            "gmacs": accounting.gmacs,
            "train_gflops_per_image": accounting.train_gflops_per_image,
            "size_note": note,
        },
    )


def _classify(error: BaseException) -> tuple[str, str]:
    from t2iscale.train.loop import TrainingDiverged

    if isinstance(error, TrainingDiverged | RunDiverged):
        return "diverged", str(error)
    if isinstance(error, UserError):
        return "failed", str(error)
    return "failed", f"{type(error).__name__}: {error}"


def _import_and_release(registry, run_id: str, owner: str, status: str, message: str) -> tuple[str, str]:
    """Results into the database first, then the claim's end: a reader never sees finished without results."""
    try:
        registry.import_results(run_id)
    except Exception as error:  # a malformed log must not leave the run claimed
        status, message = "failed", f"importing the run's results failed: {type(error).__name__}: {error}"
    registry.release(run_id, owner, status, message or None)
    return status, message


def attempt_run(
    study_dir: str | Path,
    run_id: str,
    trainer: Callable[[TrainConfig], None],
    *,
    heartbeat_s: float,
    stale_after_s: float,
    retry_diverged: bool = False,
    on_claim: Callable[[bool], None] | None = None,
) -> RunOutcome:
    """Claim `run_id` in the study at `study_dir`, train it with `trainer(config)`, record the outcome."""
    study_dir = Path(study_dir)
    owner = owner_id()
    with StudyRegistry(study_dir) as registry:
        claim = registry.claim(run_id, owner, stale_after_s, retry_diverged)
        if on_claim is not None:
            on_claim(claim.claimed)
        if not claim.claimed:
            outcome = {"finished": "already finished", "diverged": "skipped diverged"}.get(
                claim.reason, "running elsewhere"
            )
            return RunOutcome(run_id, outcome, claim.reason)
        row = registry.run(run_id)
        config = run_config(study_dir, row)
        status, message = "failed", ""
        try:
            refresh_sizes(registry, row, config)
            write_run_config(config)
            # The heartbeat has its own connection: sqlite connections are not shared across threads here.
            with (
                StudyRegistry(study_dir) as beat_registry,
                Heartbeat(lambda: beat_registry.heartbeat(run_id, owner), heartbeat_s),
            ):
                trainer(config)
            status = "finished"
        except KeyboardInterrupt:
            _import_and_release(registry, run_id, owner, "pending", "interrupted")
            raise
        except Exception as error:
            status, message = _classify(error)
            log = Path(config.run_dir) / ERROR_LOG
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as handle:
                handle.write(traceback.format_exc() + "\n")
        status, message = _import_and_release(registry, run_id, owner, status, message)
        return RunOutcome(run_id, status, message or claim.reason)

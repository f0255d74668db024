"""A run is a self-describing folder (DESIGN.md "Results").

<run_dir>/
  config.json          the resolved config (written before work starts)
  status.json          {"status": running|finished|diverged|failed|interrupted, "message", "step", "updated_at"}:
                       the step follows every logged step while running; true after every kind of exit (an error, disk full, Ctrl-C); only a kill -9 leaves
                       `running` behind, which a study detects by its claim's heartbeat
  metrics.jsonl        one line per logged step
  checkpoints/step_000100/   accelerate state + trainer_state.json (atomic: written as .tmp, then renamed);
                       good.json once its weights passed the divergence test; .diverged when they failed it
  final/               backbone/ (diffusers save_pretrained), text_encoder/ (learned encoders), ema/
  eval/                eval.jsonl (one line per step and metric) and step_000100/ (images, manifest, scores)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from t2iscale.errors import UserError

STATUSES = ("running", "finished", "diverged", "failed", "interrupted")


def write_text_atomic(path: Path, text: str) -> None:
    """Write then rename, so a reader (or a killed writer) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a write cut short (disk full) leaves no stray file
        raise
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2))


def _rewrite_in_place(path: Path, text: str) -> None:
    """Truncate and rewrite: on a full disk, truncating frees the blocks a small file needs again."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = text.encode()
        while data:
            data = data[os.write(descriptor, data) :]
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        return self.path / "final"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def eval_log(self) -> Path:
        return self.eval_dir / "eval.jsonl"

    @property
    def step_logs(self) -> list[Path]:
        """Logs keyed by step; on resume, lines after the checkpoint's step are dropped so each step appears once."""
        return [self.metrics_file, self.eval_log]

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)

    def write_config(self, text: str) -> None:
        write_text_atomic(self.config_file, text if text.endswith("\n") else text + "\n")

    def write_status(self, status: str, step: int, message: str = "") -> None:
        """Atomically; when the disk is too full for a new file, by rewriting the old one in place."""
        assert status in STATUSES, status
        text = json.dumps(
            {"status": status, "step": step, "message": message, "updated_at": time.time()}, indent=2
        )
        try:
            write_text_atomic(self.status_file, text)
        except OSError:
            _rewrite_in_place(self.status_file, text)

    def record_step(self, step: int) -> None:
        """A running run's progress: status.json's step (and updated_at) follow each logged step, its message
        stays. (Written only at start and end, it said step 0 for a whole fresh run.)"""
        current = self.read_status()
        if current.get("status") == "running":
            self.write_status("running", step, current.get("message", ""))

    def read_status(self) -> dict:
        if not self.status_file.is_file():
            return {"status": "new", "step": 0, "message": ""}
        return json.loads(self.status_file.read_text())

    def require(self) -> RunDir:
        """For commands that read a finished or running run: a clear error if the folder is not a run."""
        if not self.config_file.is_file():
            raise UserError(f"{self.path} is not a run folder (no config.json); `t2iscale train` creates one")
        return self

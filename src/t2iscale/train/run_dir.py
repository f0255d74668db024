"""A run is a self-describing folder (DESIGN.md "Results").

<run_dir>/
  config.json          the resolved config (written before work starts)
  status.json          {"status": running|finished|diverged|failed, "message", "step", "updated_at"}
  metrics.jsonl        one line per logged step
  checkpoints/step_000100/   accelerate state + trainer_state.json (atomic: written as .tmp, then renamed)
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

STATUSES = ("running", "finished", "diverged", "failed")


def write_json_atomic(path: Path, payload) -> None:
    """Write then rename, so a reader (or a killed writer) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


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

    def write_status(self, status: str, step: int, message: str = "") -> None:
        assert status in STATUSES, status
        payload = {"status": status, "step": step, "message": message, "updated_at": time.time()}
        write_json_atomic(self.status_file, payload)

    def read_status(self) -> dict:
        if not self.status_file.is_file():
            return {"status": "new", "step": 0, "message": ""}
        return json.loads(self.status_file.read_text())

    def require(self) -> RunDir:
        """For commands that read a finished or running run: a clear error if the folder is not a run."""
        if not self.config_file.is_file():
            raise UserError(f"{self.path} is not a run folder (no config.json); `t2iscale train` creates one")
        return self

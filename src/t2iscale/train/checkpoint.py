"""Atomic checkpoints and resume (edm2's CheckpointIO.load_latest): a run killed at any moment restarts from its
last complete checkpoint.

A checkpoint is written as `step_000100.tmp/` by every process (accelerate's save_state: model, optimizer, LR
schedule, EMA, RNG states per process), then the main process adds `trainer_state.json` (step, images seen, training
FLOPs, data position of every process) and renames the folder to `step_000100/`. A folder without the `.tmp` suffix
is therefore always complete; leftovers of a killed write are deleted on the next start.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

STEP_DIR = re.compile(r"^step_(\d{6,})$")
STATE_FILE = "trainer_state.json"


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = STEP_DIR.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1][1] if found else None


def remove_partial_checkpoints(root: Path) -> None:
    if root.is_dir():
        for path in root.glob("step_*.tmp"):
            shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(accelerator, root: Path, step: int, trainer_state: dict, keep: int) -> Path:
    """Collective: every process must call it. Returns the final folder."""
    final = root / step_dir_name(step)
    tmp = root / f"{step_dir_name(step)}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(trainer_state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)  # the commit point
        for _, old in complete_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, folder: Path) -> dict:
    """Restore everything registered with the accelerator; returns the trainer state."""
    accelerator.load_state(str(folder))
    return json.loads((folder / STATE_FILE).read_text())

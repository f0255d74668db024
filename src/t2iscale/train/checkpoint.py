"""Atomic checkpoints and resume (edm2's CheckpointIO.load_latest): a run killed at any moment restarts from its
last complete checkpoint.

A checkpoint is written as `step_000100.tmp/` by every process (accelerate's save_state: model, optimizer, LR
schedule, EMA, RNG states per process), then the main process adds `trainer_state.json` (step, images seen, training
FLOPs, data position of every process) and renames the folder to `step_000100/`. A folder without the `.tmp` suffix
is therefore always complete; leftovers of a killed write are deleted on the next start.

Under `recipe.parallel = "fsdp"` the checkpoint stays sharded: accelerate writes the model and AdamW state with
torch.distributed.checkpoint (`pytorch_model_fsdp_0/`, `optimizer_0/`: one file per process, plus metadata that
lets another number of processes read them), and every process adds its shard of the EMA (`ema_sharded/`, same
format). Every process writes into the same folder, so a multi-node run needs the run folder on a shared file
system. Nothing is gathered into one process's memory until the final save (`t2iscale.train.distributed`).

A checkpoint is *good* once the loss computed from its weights (the next step's) has passed the training loop's
divergence test: the loop then adds `good.json`. Rotation never deletes the newest good checkpoint, and after a
divergence the checkpoint whose weights failed is renamed `step_000100.diverged/`, so that it is never resumed from.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from t2iscale.file_modes import restore_umask_mode
from t2iscale.train.run_dir import write_json_atomic

STEP_DIR = re.compile(r"^step_(\d{6,})$")
STATE_FILE = "trainer_state.json"
GOOD_FILE = "good.json"
DIVERGED_SUFFIX = ".diverged"


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


def step_of(folder: Path) -> int:
    """The step of a complete checkpoint's folder (`step_000100` -> 100)."""
    match = STEP_DIR.match(folder.name)
    if not match:
        raise ValueError(f"{folder} is not a checkpoint folder")
    return int(match.group(1))


def is_good(folder: Path) -> bool:
    return (folder / GOOD_FILE).is_file()


def last_good_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint whose weights passed the divergence test (see the module docstring)."""
    good = [path for _, path in complete_checkpoints(root) if is_good(path)]
    return good[-1] if good else None


def mark_good(root: Path, step: int, *, judged_by_step: int, loss: float, keep: int) -> None:
    """Record that the loss of step `judged_by_step`, computed from this checkpoint's weights, passed the test;
    then keep only the `keep` newest checkpoints again (this one, the newest good, included)."""
    folder = root / step_dir_name(step)
    if folder.is_dir():
        write_json_atomic(folder / GOOD_FILE, {"judged_by_step": judged_by_step, "loss": loss})
    prune(root, keep)


def set_aside_diverged(root: Path, step: int) -> None:
    """Rename a checkpoint whose weights failed the divergence test, so that no resume starts from it."""
    folder = root / step_dir_name(step)
    if folder.is_dir():
        target = root / f"{step_dir_name(step)}{DIVERGED_SUFFIX}"
        shutil.rmtree(target, ignore_errors=True)
        folder.rename(target)


def remove_partial_checkpoints(root: Path) -> None:
    if root.is_dir():
        for path in root.glob("step_*.tmp"):
            shutil.rmtree(path, ignore_errors=True)


def prune(root: Path, keep: int, *, keep_good: bool = True) -> None:
    """Delete all but the `keep` newest complete checkpoints, and (`keep_good`) never the newest good one: until
    a loss has judged the newest checkpoint, the one before it may be the only good one left."""
    found = [path for _, path in complete_checkpoints(root)]
    kept = set(found[-keep:]) | ({last_good_checkpoint(root)} if keep_good else set())
    for old in found:
        if old not in kept:
            shutil.rmtree(old, ignore_errors=True)


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
        restore_umask_mode(tmp)  # accelerate's save_state writes model.safetensors 0600 (t2iscale.file_modes)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)  # the commit point
        prune(root, keep)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, folder: Path) -> dict:
    """Restore everything registered with the accelerator; returns the trainer state."""
    accelerator.load_state(str(folder))
    return json.loads((folder / STATE_FILE).read_text())


# --- the EMA of a sharded model (recipe.parallel = "fsdp") ---------------------------------------------------------

EMA_SHARDED = "ema_sharded"  # torch.distributed.checkpoint folder: the shadow weights, one shard per process
EMA_COUNTERS = (
    "counters.json"  # the EMA's scalars (decay, optimization step, ...), written by the main process
)


def save_sharded_ema(ema, shards: list, folder: str | Path) -> None:
    """Collective: every process writes its shard of the EMA's shadow weights into `folder`.

    `shards`: the shadow weights as DTensors (`t2iscale.train.distributed`), so that the files say which part of
    which tensor each process holds."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    target = Path(folder) / EMA_SHARDED
    dcp.save({"shadow": {str(i): shard for i, shard in enumerate(shards)}}, checkpoint_id=target)
    if dist.get_rank() == 0:
        counters = {key: value for key, value in ema.state_dict().items() if key != "shadow_params"}
        (target / EMA_COUNTERS).write_text(json.dumps(counters))


def load_sharded_ema(ema, shards: list, folder: str | Path) -> None:
    """Collective: read the shadow weights into the EMA's own shards (`shards` share their storage), in place,
    then its scalars."""
    import torch.distributed.checkpoint as dcp

    source = Path(folder) / EMA_SHARDED
    dcp.load({"shadow": {str(i): shard for i, shard in enumerate(shards)}}, checkpoint_id=source)
    ema.load_state_dict(json.loads((source / EMA_COUNTERS).read_text()))  # no shadow_params: kept as loaded

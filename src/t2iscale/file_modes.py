"""File permissions: what the toolkit writes gets the mode the user's umask gives any new file (0644 under umask
022), and an output the user may not write is named before any work is done.

safetensors 0.8 writes through a temporary file created with mode 0600 and renames it into place, so every
`.safetensors` file (`save_file`, and diffusers', transformers' and accelerate's `save_pretrained`/`save_state`,
which call it) is readable by its owner only (safetensors/safetensors#782, fix proposed in #789): a prepared data
set or an exported pipeline that a lab shares fails to load for everyone else. `restore_umask_mode` puts back the
mode an ordinary `open()` would have given; call it on what was just written, before renaming it into place. Its
callers are every writer of weights: `Backbone.save_pretrained`, the text encoders' `save`, training checkpoints,
prepared shards and exported pipelines.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def umask() -> int:
    """The process umask (Linux reads it without changing it; elsewhere it is set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0)
    os.umask(current)
    return current


def restore_umask_mode(*paths: str | Path) -> None:
    """Give each file (and each file under each folder) the mode 0666 & ~umask; folders are left as they are."""
    mode = 0o666 & ~umask()
    for path in map(Path, paths):
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if stat.S_IMODE(file.stat().st_mode) != mode:
                file.chmod(mode)


def _can_write(path: Path) -> bool:
    return os.access(path, os.W_OK)


def require_writable_file(path: str | Path, what: str, option: str) -> None:
    """Raise a UserError now if the file `path` (made later, with its folders) could not be written by this user.

    For outputs written after long work (a report, an audit): a study folder that is read-only to this user (a
    colleague's) would otherwise fail with a raw PermissionError at the end. `what` names the output, `option` the
    flag that moves it ("--out").
    """
    from t2iscale.errors import UserError

    path = Path(path)
    try:
        if path.exists():
            ok = _can_write(path)
        else:
            # The folders are made later: the nearest existing one must let them be made.
            existing = path.parent
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            ok = existing.is_dir() and _can_write(existing) and os.access(existing, os.X_OK)
    except PermissionError:  # a folder on the way may not even be looked into
        ok = False
    if not ok:
        raise UserError(f"cannot write {what} {path}: permission denied; give {option} a path you can write")

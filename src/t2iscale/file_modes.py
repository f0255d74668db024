"""Files the toolkit writes get the mode the user's umask gives any new file (0644 under umask 022).

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

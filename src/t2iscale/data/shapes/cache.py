"""A shapes training set rendered once and shared by every run that trains on it.

An image and its candidate captions are pure functions of (world, seed, index, resolution) (`ShapesDataset`), and a
study trains many runs on one set (other backbones, training seeds, caption policies). Rendering and writing the
captions costs about 0.2 ms per image on one core, some 10% of a tiny model's training step, so the first run that
needs a set renders all of it into a cache folder and every later run reads it back: a memory-mapped uint8 array of
images and the candidate captions. What a run trains on is unchanged to the bit (a test checks it); only the time
spent on the data moves.

Folder: `$T2ISCALE_CACHE_DIR/shapes/<key>/` (default `~/.cache/t2iscale`), the key a hash of (world, seed, size,
resolution). Two runners that need one set at once: the first takes a lock file and renders, the other waits for
it (a lock older than `STALE_LOCK_S` is taken over), so a set is rendered once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from t2iscale.data.shapes.captions import SceneCaptions

CACHE_ENV = "T2ISCALE_CACHE_DIR"
FORMAT_VERSION = 1
STALE_LOCK_S = 600.0


def cache_root() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "t2iscale"


class RenderedSet:
    """The images (N, H, W, 3) uint8 (memory-mapped) and candidate captions of one `ShapesDataset`."""

    def __init__(self, folder: Path):
        self.images = np.load(folder / "images.npy", mmap_mode="r")
        self._captions = json.loads((folder / "captions.json").read_text())

    def captions(self, index: int) -> SceneCaptions:
        alt, *synthetic = self._captions[index]
        return SceneCaptions(alt=alt, synthetic=synthetic)


def _key(dataset) -> str:
    identity = {
        "version": FORMAT_VERSION,
        "world": dataset.world.fingerprint,
        "seed": dataset.seed,
        "size": dataset.size,
        "resolution": dataset.resolution,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _render(dataset, folder: Path) -> None:
    """Render every image and its captions into `folder` (a fresh temporary folder)."""
    images = np.lib.format.open_memmap(
        folder / "images.npy",
        mode="w+",
        dtype=np.uint8,
        shape=(dataset.size, dataset.resolution, dataset.resolution, 3),
    )
    captions = []
    for index in range(dataset.size):
        scene = dataset.scene(index)
        images[index] = dataset.render(scene)
        scene_captions = dataset.captions(index, scene)
        captions.append([scene_captions.alt, *scene_captions.synthetic])
    images.flush()
    del images
    (folder / "captions.json").write_text(json.dumps(captions))


def rendered_set(dataset, root: Path | None = None) -> RenderedSet:
    """The dataset's rendered set, rendering it first when no runner has (see the module note)."""
    root = (root or cache_root()) / "shapes"
    folder = root / _key(dataset)
    lock = folder.with_suffix(".lock")
    while not (folder / "captions.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                stale = time.time() - lock.stat().st_mtime > STALE_LOCK_S
            except FileNotFoundError:
                continue  # its holder just finished
            if stale:
                lock.unlink(missing_ok=True)
            else:
                time.sleep(0.2)
            continue
        os.close(descriptor)
        try:
            if not (folder / "captions.json").is_file():
                partial = Path(f"{folder}.partial-{os.getpid()}")
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir()
                _render(dataset, partial)
                shutil.rmtree(folder, ignore_errors=True)
                partial.rename(folder)  # atomic: a reader sees the whole set or none
        finally:
            lock.unlink(missing_ok=True)
    return RenderedSet(folder)

"""The sample grid: the same prompts and seeds for every model, side by side (paper Figs. 1 and 7 compare
backbones this way).

Rows are runs ordered by parameters, columns a fixed subset of the evaluation prompts at one eval seed, each image
from the run's last evaluated step (`eval/step_XXXXXX/manifest.jsonl`). Every run of a study is evaluated on
the same prompts and seeds with its own fixed noise per seed, so differences along a column are the models'.
The report shows the grid as an HTML table (`cells`, one enlarged image per run and prompt) so the prompts stay
text above their column; `image` is the same grid as one array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from t2iscale.errors import UserError
from t2iscale.eval.manifest import ManifestEntry, load_image, read_manifest
from t2iscale.images import make_grid
from t2iscale.report.collect import StudyData
from t2iscale.train.checkpoint import step_dir_name
from t2iscale.train.run_dir import RunDir

GRID_PAD_PX = 2


@dataclass(frozen=True)
class SampleColumn:
    prompt_id: str
    seed: int
    caption: str


@dataclass(frozen=True)
class SampleRow:
    run_id: str
    label: str
    params: int | None
    step: int
    seed: int | None = None  # the run's training seed


@dataclass(frozen=True)
class SampleGrid:
    image: (
        np.ndarray | None
    )  # (rows·(cell+pad)+pad, columns·(cell+pad)+pad, 3) uint8; None when no run has samples
    rows: list[SampleRow]
    columns: list[SampleColumn]
    cell_px: tuple[int, int] = (0, 0)  # (height, width) of one (upscaled) sample in the grid
    notes: list[str] = field(default_factory=list)  # runs left out and why
    cells: list[list[np.ndarray]] = field(default_factory=list)  # [row][column] (cell_h, cell_w, 3) uint8
    upscale: int = 1  # each sample pixel is upscale x upscale pixels in `cells` and `image`


def last_manifest(run_dir, steps) -> tuple[int, list[ManifestEntry], RunDir] | None:
    """The newest evaluated step (of `steps`) whose manifest and images are all on disk."""
    run = RunDir(run_dir)
    for step in sorted(steps, reverse=True):
        path = run.eval_dir / step_dir_name(step) / "manifest.jsonl"
        if path.is_file():
            try:
                return step, read_manifest(path), run
            except UserError:
                continue  # a step whose images are incomplete: fall back to an earlier one
    return None


def spread(items: list, count: int) -> list:
    """`count` items evenly spaced over the list, so the columns cover every prompt category."""
    if len(items) <= count:
        return list(items)
    indices = np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))
    return [items[i] for i in indices]


def _fit_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST))


def collect_samples(data: StudyData, max_columns: int = 8, min_cell_px: int = 64) -> SampleGrid:
    """The grid for the evaluated runs of `data`; small images are enlarged (pixel repetition) to `min_cell_px`."""
    found, notes = [], []
    for curve in data.curves:
        run = data.run(curve.run_id)
        latest = None if run is None else last_manifest(run.run_dir, curve.steps)
        if latest is None:
            notes.append(f"{curve.run_id}: no sample images on disk for its evaluated steps")
            continue
        step, entries, run_dir = latest
        row = SampleRow(curve.run_id, curve.label, curve.params, step, run.seed)
        found.append(
            (row, {(e.prompt_id, e.seed): e for e in entries}, run_dir.eval_dir / step_dir_name(step))
        )
    if not found:
        return SampleGrid(None, [], [], notes=notes)

    # Columns: prompts every run has, at the smallest common seed, in the first run's manifest order.
    common = set(found[0][1]).intersection(*(set(by_key) for _, by_key, _ in found[1:]))
    if not common:
        notes.append("the runs share no (prompt, seed) pair at their last evaluated steps")
        return SampleGrid(None, [row for row, _, _ in found], [], notes=notes)
    seed = min(s for _, s in common)
    keys = spread([key for key in found[0][1] if key in common and key[1] == seed], max_columns)
    first = found[0][1]
    columns = [SampleColumn(p, s, first[(p, s)].caption or p) for p, s in keys]

    images = []
    for _, by_key, image_dir in found:
        for key in keys:
            images.append(load_image(image_dir / by_key[key].path))  # (H, W, 3) uint8
    height, width = images[0].shape[:2]
    stacked = np.stack([_fit_to(image, height, width) for image in images])  # (rows·columns, H, W, 3)
    upscale = max(1, math.ceil(min_cell_px / max(height, width)))
    grid = make_grid(stacked, columns=len(keys), pad=GRID_PAD_PX, upscale=upscale)
    enlarged = [enlarge(image, upscale) for image in stacked]
    cells = [enlarged[r * len(keys) : (r + 1) * len(keys)] for r in range(len(found))]
    return SampleGrid(
        grid,
        [row for row, _, _ in found],
        columns,
        cell_px=(height * upscale, width * upscale),
        notes=notes,
        cells=cells,
        upscale=upscale,
    )


def enlarge(image: np.ndarray, upscale: int) -> np.ndarray:
    """Pixel repetition: every pixel becomes an upscale x upscale block (sharp, unlike a browser's smoothing)."""
    return image.repeat(upscale, axis=0).repeat(upscale, axis=1)

"""Small image helpers shared by sampling and the report: PNG writing and sample grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 (H, W, 3) array as PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path


def make_grid(
    images: np.ndarray, columns: int, pad: int = 2, upscale: int = 1, background: int = 255
) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one (rows·(H+pad)+pad, columns·(W+pad)+pad, 3) image.

    `upscale` enlarges each image by pixel repetition first, so 32 px samples stay readable in a report.
    """
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
    if upscale > 1:
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
    count, height, width, _ = images.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), background, np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = pad + row * (height + pad), pad + column * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid

"""How fast the shapes world makes training batches (scene + render + captions), on one core."""

from __future__ import annotations

import time

from t2iscale.data.shapes.dataset import ShapesDataset
from t2iscale.data.shapes.world import WorldConfig


def images_per_second(
    world: WorldConfig | str, resolution: int, images: int = 2000, policy: str = "mix"
) -> float:
    dataset = ShapesDataset(world, seed=0, size=images, policy=policy, resolution=resolution)
    dataset.batch(range(min(50, images)))  # warm caches (held-out prompt set, noun patterns)
    start = time.perf_counter()
    for first in range(0, images, 256):
        dataset.batch(range(first, min(first + 256, images)))
    return images / (time.perf_counter() - start)


def benchmark_line(world: WorldConfig | str, resolutions=(16, 32, 64), images: int = 2000) -> str:
    rates = [f"{r}px {images_per_second(world, r, images):,.0f} img/s" for r in resolutions]
    name = world if isinstance(world, str) else world.name
    return f"shapes bench (world={name}, batch path: scene + render + captions, 1 core): " + " | ".join(rates)

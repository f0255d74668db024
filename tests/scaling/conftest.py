"""A small synthetic study as `Curve`s: 3 model sizes x 3 data sizes, evaluated every 1000 steps."""

import numpy as np
import pytest

from t2iscale.scaling.points import Curve

BATCH = 256
EVAL_STEPS = tuple(range(0, 8001, 1000))


def synthetic_curves(seed: int = 0, metric: str = "tifa") -> list[Curve]:
    rng = np.random.default_rng(seed)
    curves = []
    for params, gmacs in ((100_000_000, 40.0), (300_000_000, 110.0), (900_000_000, 330.0)):
        for noun_pairs in (50_000_000, 200_000_000, 800_000_000):
            images_seen = [step * BATCH for step in EVAL_STEPS]
            flops = [3 * 2 * gmacs * 1e9 * images for images in images_seen]  # DESIGN.md: 3 x forward FLOPs
            # Rises with compute, capped by model size and data size, plus evaluation noise.
            ceiling = 0.5 + 0.04 * np.log10(params / 1e8) + 0.03 * np.log10(noun_pairs / 5e7)
            values = [
                float(ceiling * (1 - np.exp(-step / 2500)) + 0.2 + 0.003 * rng.standard_normal())
                for step in EVAL_STEPS
            ]
            run_id = f"n{params // 1_000_000}m-d{noun_pairs // 1_000_000}m"
            curves.append(
                Curve(
                    run_id=run_id,
                    label=f"{params / 1e6:.0f}M params, {noun_pairs / 1e6:.0f}M pairs",
                    params=params,
                    gmacs=gmacs,
                    dataset_noun_pairs=noun_pairs,
                    steps=EVAL_STEPS,
                    images_seen=images_seen,
                    train_flops=flops,
                    values=values,
                    metric=metric,
                    category={"counting": [v - 0.1 for v in values]},
                )
            )
    return curves


@pytest.fixture
def study_curves() -> list[Curve]:
    return synthetic_curves()

"""Checks on a CUDA machine that the CPU tests cannot make: CUDA-graph sampling computes what eager sampling does.

For each zoo name (paper setting, random weights): the evaluation's generate path (TextToImage, DDIM with CFG,
bf16 autocast) with and without CUDA graphs, on the same prompts and seeds; prints the relative difference, the
number of graphs captured and that a second call reuses them. Exits non-zero if a check fails.

    python scripts/gpu_check.py sdxl-td4_4 sdxl
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from t2iscale.bench.toolkit import LatentsToHost, PrecomputedPrompts
from t2iscale.bench.workload import random_workload
from t2iscale.diffusion.objectives import make_objective
from t2iscale.eval.text_to_image import TextToImage
from t2iscale.zoo.backbone import build
from t2iscale.zoo.setting import PAPER_SETTING

BATCH, STEPS = 2, 10
TOLERANCE = 1e-2  # bf16 autocast: replay runs the same kernels, so anything near bf16 rounding is a bug


def check(name: str, device: torch.device) -> bool:
    torch.manual_seed(0)
    backbone = build(name, PAPER_SETTING, device=device).eval()
    workload = random_workload(PAPER_SETTING, BATCH, seed=0).to(device)
    captions, seeds = PrecomputedPrompts.captions(BATCH), list(range(BATCH))
    results, seconds, generators = {}, {}, {}
    for graphs in (False, True):
        generator = TextToImage(
            backbone,
            PrecomputedPrompts(workload),
            make_objective("ddpm-eps"),
            LatentsToHost(clip_sample=False),
            autocast_dtype=torch.bfloat16,
            cuda_graphs=graphs,
        )
        generator.generate(captions, seeds, steps=STEPS, batch_size=BATCH)  # capture / warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        results[graphs] = generator.generate(captions, seeds, steps=STEPS, batch_size=BATCH)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds[graphs] = time.perf_counter() - start
        generators[graphs] = generator
    eager, graphed = (np.asarray(results[k], dtype=np.float64) for k in (False, True))
    relative = float(np.linalg.norm(graphed - eager) / np.linalg.norm(eager))
    captured = generators[True].forward.captured
    ok = np.isfinite(graphed).all() and relative < TOLERANCE and captured == (device.type == "cuda")
    print(
        f"{name}: batch {BATCH}, {STEPS} DDIM steps with CFG: |graphed - eager| / |eager| = {relative:.2e}, "
        f"graphs captured {captured}, eager {seconds[False] * 1e3:.0f} ms, graphed {seconds[True] * 1e3:.0f} ms "
        f"-> {'ok' if ok else 'FAILED'}"
    )
    return bool(ok)


def main(names: list[str]) -> int:
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)}; torch {torch.__version__}")
    results = [check(name, device) for name in names or ["sdxl-td4_4"]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

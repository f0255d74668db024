"""Where the toolkit's training step spends GPU time: torch.profiler over a few steps, top operators by CUDA time.

python scripts/gpu_profile.py sdxl-td4_4 64
"""

from __future__ import annotations

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from t2iscale.bench.options import BenchOptions
from t2iscale.bench.toolkit import ToolkitTraining
from t2iscale.bench.workload import random_workload
from t2iscale.zoo.setting import PAPER_SETTING, Setting


def main(name: str = "sdxl-td4_4", batch: int = 64, steps: int = 3) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    setting = PAPER_SETTING if device.type == "cuda" else Setting(resolution=32, text_dim=32, text_len=8)
    options = BenchOptions(names=(name,), batch_sizes=(batch,))
    workloads = [random_workload(setting, batch, seed=offset) for offset in range(2)]
    training = ToolkitTraining(name, setting, options, workloads, device)
    for _ in range(3):
        training()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            training()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "self_device_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"{name}, batch {batch}, {steps} steps on {device}:")
    print(prof.key_averages().table(sort_by=sort, row_limit=22, max_name_column_width=60))
    training.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sdxl-td4_4", int(sys.argv[2]) if len(sys.argv) > 2 else 64)

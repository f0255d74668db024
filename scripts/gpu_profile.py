"""Where the toolkit's training step spends GPU time: torch.profiler over a few steps, top operators by CUDA time,
and how busy the GPU was (its kernel time over the wall time of the profiled steps).

python scripts/gpu_profile.py sdxl-td4_4 64 [COMPILE]     # COMPILE: a recipe.compile mode (default: auto)
"""

from __future__ import annotations

import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from t2iscale.bench.options import BenchOptions
from t2iscale.bench.toolkit import ToolkitTraining
from t2iscale.bench.workload import random_workload
from t2iscale.zoo.setting import PAPER_SETTING, Setting


def main(name: str = "sdxl-td4_4", batch: int = 64, compile_mode: str = "auto", steps: int = 3) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    setting = PAPER_SETTING if device.type == "cuda" else Setting(resolution=32, text_dim=32, text_len=8)
    options = BenchOptions(names=(name,), batch_sizes=(batch,), compile=compile_mode)
    workloads = [random_workload(setting, batch, seed=offset) for offset in range(2)]
    training = ToolkitTraining(name, setting, options, workloads, device)
    for _ in range(3):
        training()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            training()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - start) * 1e3 / steps
    sort = "self_device_time_total" if device.type == "cuda" else "cpu_time_total"
    averages = prof.key_averages()
    print(
        f"{name}, batch {batch}, compile {compile_mode}, {steps} steps on {device}: {wall_ms:.1f} ms per step"
    )
    print(averages.table(sort_by=sort, row_limit=22, max_name_column_width=60))
    if device.type == "cuda":
        from torch.autograd import DeviceType

        # Kernels are the events on the device (operators' device time would count them twice).
        kernel_us = sum(e.self_device_time_total for e in prof.events() if e.device_type == DeviceType.CUDA)
        kernel_ms = kernel_us / 1e3 / steps
        print(f"GPU kernel time {kernel_ms:.1f} ms per step: busy {kernel_ms / wall_ms:.0%} of the wall time")
    training.close()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        arguments[0] if arguments else "sdxl-td4_4",
        int(arguments[1]) if len(arguments) > 1 else 64,
        arguments[2] if len(arguments) > 2 else "auto",
    )

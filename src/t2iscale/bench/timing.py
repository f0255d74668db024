"""Timing one repeated piece of device work: the first call, a warm-up, then many timed calls.

Device work is asynchronous, so a host clock alone would time the kernel launches, not the kernels:
- the first call (which includes `torch.compile`, cuDNN/cuBLAS autotuning, lazy allocations) is timed on its own
  with the host clock around a device synchronization, and reported as `first_s`;
- the warm-up calls are not timed;
- on CUDA every timed call sits between two CUDA events recorded on the current stream, read after one final
  synchronization, so the calls queue back to back as in a real loop and the events give the device-side time
  from the start of one call to its end (gaps where the device waits for the host are part of it, as they are
  part of a training step); on the CPU the work is synchronous and the host clock times each call.
The summary is the median with the quartiles and the extremes, so a reader can tell a difference between two
models from the run-to-run spread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from t2iscale.train.device import synchronize


@dataclass(frozen=True)
class Timing:
    first_s: float  # the first call alone (compile and other one-time work included)
    samples_s: tuple[float, ...]  # each timed call

    @property
    def median_s(self) -> float:
        return float(np.median(self.samples_s))

    @property
    def p25_s(self) -> float:
        return float(np.percentile(self.samples_s, 25))

    @property
    def p75_s(self) -> float:
        return float(np.percentile(self.samples_s, 75))

    @property
    def min_s(self) -> float:
        return min(self.samples_s)

    @property
    def max_s(self) -> float:
        return max(self.samples_s)

    @property
    def relative_spread(self) -> float:
        """Interquartile range over the median: differences below this are noise."""
        return (self.p75_s - self.p25_s) / self.median_s if self.median_s > 0 else float("nan")

    def as_dict(self) -> dict:
        return {
            "first_s": self.first_s,
            "median_s": self.median_s,
            "p25_s": self.p25_s,
            "p75_s": self.p75_s,
            "min_s": self.min_s,
            "max_s": self.max_s,
            "relative_spread": self.relative_spread,
            "samples_s": list(self.samples_s),
        }


def time_calls(call: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> Timing:
    """Time `call()` on `device`: once alone, `warmup` times untimed, then `repeats` timed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    first_s = time.perf_counter() - start

    for _ in range(warmup):
        call()
    synchronize(device)

    if device.type == "cuda":
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(repeats)
        ]
        for begin, end in events:
            begin.record()
            call()
            end.record()
        torch.cuda.synchronize(device)
        samples = tuple(begin.elapsed_time(end) / 1e3 for begin, end in events)  # ms -> s
    else:
        timed = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            synchronize(device)
            timed.append(time.perf_counter() - start)
        samples = tuple(timed)
    return Timing(first_s=first_s, samples_s=samples)

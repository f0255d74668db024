"""Peak memory of one measurement.

CUDA: `torch.cuda.max_memory_allocated` since a reset taken right before the measurement (after freeing the
previous model), so it covers what this measurement holds: weights, optimizer state, EMA, activations.
CPU: the process's peak resident set size (VmHWM). Linux resets it when "5" is written to /proc/self/clear_refs,
so each measurement gets its own peak; where that is not allowed the number is the peak since the process
started (said in `kind`). On the CPU it includes the Python process itself (libraries, allocator caches).
"""

from __future__ import annotations

import gc
from pathlib import Path

import torch

from t2iscale.train.device import peak_memory_gib, reset_peak_memory

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def _peak_rss_gib() -> float | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB -> GiB
    except OSError:
        pass
    return peak_memory_gib(torch.device("cpu"))  # getrusage's peak, since the process started


class PeakMemory:
    def __init__(self, device: torch.device):
        self.device = device
        self.resettable = device.type == "cuda" or self._reset_peak_rss()

    @property
    def kind(self) -> str:
        if self.device.type == "cuda":
            return "cuda_max_allocated"
        return "process_peak_rss" if self.resettable else "process_peak_rss_since_start"

    def reset(self) -> None:
        """Free what earlier measurements left behind, then start a new peak."""
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            reset_peak_memory(self.device)
            return
        self.resettable = self._reset_peak_rss()

    @staticmethod
    def _reset_peak_rss() -> bool:
        try:
            CLEAR_REFS.write_text("5")  # "5": reset the peak RSS (Linux >= 4.0, proc(5))
        except OSError:
            return False
        return True

    def peak_gib(self) -> float | None:
        if self.device.type == "cuda":
            return peak_memory_gib(self.device)
        return _peak_rss_gib()

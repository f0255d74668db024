"""`t2iscale bench`: forward latency, training-step throughput and sampling speed of zoo backbones, measured on
the device at hand, next to a stock diffusers loop on the same config and batch.

Modules, one job each: `options` (what to measure), `workload` (the synthetic batch), `toolkit` (the code the
training loop and the evaluation really run), `stock` (plain diffusers, driven as its scripts do), `timing`
(first call, warm-up, events, median and spread), `memory` (peak per measurement), `runner` (the loops over
models, measures and batch sizes), `results` (records, ratios, JSON) and `table` (the text table).
Torch-free at import; `run_benchmark` imports torch on first use.
"""

from __future__ import annotations

import importlib

from t2iscale.bench.options import MEASURES, BenchOptions

__all__ = ["MEASURES", "BenchOptions", "run_benchmark"]


def __getattr__(name: str):
    if name == "run_benchmark":
        return importlib.import_module("t2iscale.bench.runner").run_benchmark
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Benchmark results: one record per (measure, loop, model, resolution, batch size), ratios, JSON.

Throughput is images per second from the median time of one call (a forward pass, an optimizer step, a whole
generate call); MFU is the achieved FLOP/s, counted by the zoo's accounting (DESIGN.md "Accounting": training =
3 x forward FLOPs per image), over the device's peak (`t2iscale.train.device.peak_tflops`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from t2iscale.bench.options import BenchOptions
from t2iscale.bench.timing import Timing

FORWARD, TRAIN, LOOP, SAMPLING = "forward", "train", "loop", "sampling"
TOOLKIT, STOCK, EAGER = "toolkit", "stock", "eager"  # EAGER: the toolkit's own path with compile off


@dataclass
class Measurement:
    measure: str  # forward | train | sampling
    impl: str  # toolkit | stock
    name: str
    family: str
    resolution: int
    batch_size: int
    params: int
    gflops_per_image: float  # what one call computes per image (forward; train step; all sampling steps)
    timing: Timing | None = None
    peak_memory_gib: float | None = None
    error: str | None = None  # e.g. "out of memory"; then no timing
    # Filled by `add_ratios`.
    time_ratio_to_first: float | None = (
        None  # median time / the first model's, same measure, loop, size, batch
    )
    speedup_over_stock: float | None = None  # toolkit images/s / stock images/s (toolkit rows)
    memory_ratio_to_stock: float | None = None  # toolkit peak memory / stock peak memory (toolkit rows)
    speedup_over_eager: float | None = None  # toolkit images/s / the same path uncompiled (--baseline eager)
    loop_over_step: float | None = None  # loop rows: the loop's images/s / the bare train step's (same run)
    peak_tflops: float = field(default=float("nan"), repr=False)

    @property
    def images_per_s(self) -> float | None:
        if self.timing is None:
            return None
        return self.batch_size / self.timing.median_s

    @property
    def achieved_tflops(self) -> float | None:
        rate = self.images_per_s
        return None if rate is None else self.gflops_per_image * rate / 1e3

    @property
    def achieved_gflops(self) -> float | None:
        achieved = self.achieved_tflops
        return None if achieved is None else 1e3 * achieved

    @property
    def mfu(self) -> float | None:
        achieved = self.achieved_tflops
        return None if achieved is None else achieved / self.peak_tflops

    def cell(self) -> tuple:
        return (self.measure, self.impl, self.resolution, self.batch_size)

    def as_dict(self) -> dict:
        return {
            "measure": self.measure,
            "impl": self.impl,
            "name": self.name,
            "family": self.family,
            "resolution": self.resolution,
            "batch_size": self.batch_size,
            "params": self.params,
            "gflops_per_image": self.gflops_per_image,
            "images_per_s": self.images_per_s,
            "achieved_tflops": self.achieved_tflops,
            "achieved_gflops": self.achieved_gflops,
            "mfu": self.mfu,
            "peak_memory_gib": self.peak_memory_gib,
            "time_ratio_to_first": self.time_ratio_to_first,
            "speedup_over_stock": self.speedup_over_stock,
            "memory_ratio_to_stock": self.memory_ratio_to_stock,
            "speedup_over_eager": self.speedup_over_eager,
            "loop_over_step": self.loop_over_step,
            "error": self.error,
            "timing": self.timing.as_dict() if self.timing else None,
        }


def add_ratios(measurements: list[Measurement], first_name: str) -> None:
    """Ratios to the first model (same measure, loop, resolution and batch), toolkit over stock and over eager,
    and the whole loop over the bare train step (same model, resolution and batch)."""
    timed = [m for m in measurements if m.timing is not None]
    firsts = {m.cell(): m for m in timed if m.name == first_name}
    stocks = {(m.measure, m.name, m.resolution, m.batch_size): m for m in timed if m.impl == STOCK}
    eagers = {(m.measure, m.name, m.resolution, m.batch_size): m for m in timed if m.impl == EAGER}
    steps = {
        (m.name, m.resolution, m.batch_size): m for m in timed if m.measure == TRAIN and m.impl == TOOLKIT
    }
    for m in timed:
        eager = eagers.get((m.measure, m.name, m.resolution, m.batch_size))
        if m.impl == TOOLKIT and eager is not None:
            m.speedup_over_eager = m.images_per_s / eager.images_per_s
        step = steps.get((m.name, m.resolution, m.batch_size))
        if m.measure == LOOP and step is not None:
            m.loop_over_step = m.images_per_s / step.images_per_s
        first = firsts.get(m.cell())
        if first is not None:
            m.time_ratio_to_first = m.timing.median_s / first.timing.median_s
        stock = stocks.get((m.measure, m.name, m.resolution, m.batch_size))
        if m.impl == TOOLKIT and stock is not None:
            m.speedup_over_stock = m.images_per_s / stock.images_per_s
            if m.peak_memory_gib and stock.peak_memory_gib:
                m.memory_ratio_to_stock = m.peak_memory_gib / stock.peak_memory_gib


@dataclass
class BenchReport:
    options: BenchOptions
    device: dict  # type, name, peak_tflops, peak_source, memory_kind, versions
    measurements: list[Measurement]

    def as_dict(self) -> dict:
        return {
            "options": self.options.as_dict(),
            "device": self.device,
            "results": [m.as_dict() for m in self.measurements],
        }

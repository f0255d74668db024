"""The benchmark's text table: one row per measurement, ratios to the first model and to the stock loop."""

from __future__ import annotations

from t2iscale.bench.results import BenchReport, Measurement

HEADER = (
    "measure",
    "loop",
    "model",
    "res",
    "batch",
    "median ms",
    "IQR ms",
    "img/s",
    "GFLOP/s",
    "MFU",
    "peak GiB",
    "first s",
    "time/first",
    "speed/stock",
    "mem/stock",
    "speed/eager",
    "loop/step",
)
LEFT_ALIGNED = 3  # measure, loop, model

MEMORY_KINDS = {
    "cuda_max_allocated": "torch.cuda.max_memory_allocated, reset before each row",
    "process_peak_rss": "the process's peak RSS (whole process), reset before each row",
    "process_peak_rss_since_start": "the process's peak RSS since it started (could not be reset)",
}


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _row(m: Measurement) -> tuple[str, ...]:
    head = (m.measure, m.impl, m.name, str(m.resolution), str(m.batch_size))
    if m.timing is None:
        return (*head, m.error or "failed", *("-",) * (len(HEADER) - len(head) - 1))
    timing = m.timing
    return (
        *head,
        _number(1e3 * timing.median_s),
        f"{_number(1e3 * timing.p25_s, 3)}-{_number(1e3 * timing.p75_s, 3)}",
        _number(m.images_per_s),
        _number(m.achieved_gflops),
        f"{100 * m.mfu:.3g}%",
        _number(m.peak_memory_gib, 3),
        _number(timing.first_s, 3),
        _ratio(m.time_ratio_to_first),
        _ratio(m.speedup_over_stock),
        _ratio(m.memory_ratio_to_stock),
        _ratio(m.speedup_over_eager),
        _ratio(m.loop_over_step),
    )


COMPILE_DESCRIPTIONS = {"auto": "auto (train: regional on CUDA from 100M params; forward, sampling: off)"}


def table_text(report: BenchReport) -> str:
    options, device = report.options, report.device
    space = "pixels, 3 channels" if options.pixel else "latents (resolution / 8), 4 channels"
    sampler = f"DDIM {options.sampling_steps} steps, CFG {options.guidance:g}"
    lines = [
        f"device: {device['type']} {device['name']}; peak {device['peak_tflops']:.4g} TFLOP/s "
        f"({device['peak_source']})",
        f"precision: {options.precision}{' autocast over fp32 weights' if options.precision == 'bf16' else ''}; "
        f"compile {COMPILE_DESCRIPTIONS.get(options.compile, options.compile)}; channels-last {'on' if options.channels_last else 'off'}; "
        f"sampling CUDA graphs {'on' if options.cuda_graphs else 'off'} (toolkit rows; stock rows never)",
        f"setting: {space}, text {options.text_len} x {options.text_dim}; {options.steps} timed calls after "
        f"1 first call and {options.warmup} warm-up calls",
        f"one call = forward: one forward pass; train: one optimizer step; loop: one step of the whole training "
        f"loop (shapes world, learned text encoder, data, logging); sampling: one generate call ({sampler})",
        f"peak memory: {MEMORY_KINDS.get(device['memory_kind'], device['memory_kind'])}",
        "time/first: median time over the first model's (same measure, loop, resolution, batch); "
        "speed/stock: toolkit img/s over stock img/s; speed/eager: over the same path uncompiled; "
        "loop/step: the loop's img/s over the bare train step's; GFLOP/s: achieved, against the peak above",
        "",
    ]
    rows = [HEADER, *(_row(m) for m in report.measurements)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(width) if i < LEFT_ALIGNED else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths))
            ).rstrip()
        )
    return "\n".join(lines)

"""Run a benchmark: for every resolution, model, measure and loop (toolkit, stock), time every batch size.

One model at a time is alive on the device: each (model, measure, loop) builds its own, times its batch sizes
and is freed before the next, so peak memory belongs to one measurement. A measurement that runs out of device
memory is recorded as such and the benchmark goes on (large batches of large models are expected to).
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable, Iterator

import torch

from t2iscale.bench import stock, toolkit
from t2iscale.bench.memory import PeakMemory
from t2iscale.bench.options import BenchOptions
from t2iscale.bench.results import (
    EAGER,
    FORWARD,
    LOOP,
    SAMPLING,
    STOCK,
    TOOLKIT,
    TRAIN,
    BenchReport,
    Measurement,
    add_ratios,
)
from t2iscale.bench.timing import time_calls
from t2iscale.bench.workload import Workload, random_workload
from t2iscale.errors import UserError
from t2iscale.progress import progress_bar
from t2iscale.train.device import peak_tflops
from t2iscale.zoo.accounting import Accounting, account
from t2iscale.zoo.setting import Setting

OUT_OF_MEMORY = "out of memory"
# A call that takes no argument and does one timed unit of work, and what frees it afterwards.
Session = tuple[Callable[[], object], Callable[[], None]]


def resolve_device(choice: str) -> torch.device:
    """The device of `--device`; a CUDA device always with its index (torch.cuda.set_device needs one)."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise UserError(f"--device {choice!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {choice}: the benchmark runs on cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {choice}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def describe_device(device: torch.device, options: BenchOptions, memory: PeakMemory) -> dict:
    import diffusers

    peak, source = peak_tflops(device, options.mixed_precision)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
    return {
        "type": device.type,
        "name": name,
        "peak_tflops": peak,
        "peak_source": source,
        "memory_kind": memory.kind,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": diffusers.__version__,
    }


def flops_per_image(measure: str, accounting: Accounting, options: BenchOptions) -> float:
    """GFLOPs one call does per image: a forward pass, a training step (3 x forward), or a whole generate
    call (steps x forward, twice per step with classifier-free guidance)."""
    if measure == FORWARD:
        return accounting.fwd_gflops
    if measure in (TRAIN, LOOP):  # the loop: the backbone's training FLOPs (the text encoder is not counted)
        return accounting.train_gflops_per_image
    passes = 2 if options.guidance != 1.0 else 1
    return options.sampling_steps * passes * accounting.fwd_gflops


def _workload(setting: Setting, batch: int, options: BenchOptions, offset: int = 0) -> Workload:
    return random_workload(setting, batch, seed=options.seed + offset)


def _sessions(
    measure: str, impl: str, name: str, setting: Setting, options: BenchOptions, device: torch.device
) -> Iterator[tuple[int, Callable[[], Session]]]:
    """(batch size, a function that sets up that batch's timed call) for one model, measure and loop.

    Forward and sampling build the model once for all batch sizes; training builds model and optimizer per batch
    size (optimizer and EMA state belong to one measurement). EAGER is the toolkit's path with compile off."""
    if impl == EAGER:
        options, impl = dataclasses.replace(options, compile="off"), TOOLKIT
    dtype = toolkit.autocast_dtype(options)
    if measure == TRAIN:
        for batch in options.batch_sizes:

            def setup(batch=batch) -> Session:
                workloads = [_workload(setting, batch, options, offset) for offset in range(2)]
                if impl == TOOLKIT:
                    training = toolkit.ToolkitTraining(name, setting, options, workloads, device)
                    return training, training.close
                torch.manual_seed(options.seed)
                model = stock.build_stock_model(name, setting, device)
                step = stock.StockTrainStep(model, options.recipe(batch), device, dtype)
                taken = [0]

                def call():
                    w = workloads[taken[0] % len(workloads)]
                    taken[0] += 1
                    return step(w.x0, w.text_ctx, w.text_mask)

                return call, lambda: None

            yield batch, setup
        return

    if impl == TOOLKIT:
        model = toolkit.build_backbone(name, setting, options, device)
    else:
        torch.manual_seed(options.seed)
        model = stock.build_stock_model(name, setting, device).eval()
    for batch in options.batch_sizes:

        def setup(batch=batch) -> Session:
            w = _workload(setting, batch, options).to(device)
            if measure == FORWARD and impl == TOOLKIT:
                return toolkit.forward_call(model, w, options), lambda: None
            if measure == SAMPLING and impl == TOOLKIT:
                return toolkit.sampling_call(model, w, options), lambda: None
            if measure == FORWARD:

                @torch.inference_mode()
                def call():
                    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
                    with autocast:
                        return stock.stock_predict(model, w.x0, w.timesteps, w.text_ctx, w.text_mask)

                return call, lambda: None
            shape = tuple(w.x0.shape[1:])

            def call():
                return stock.stock_sample(
                    model,
                    shape,
                    w.text_ctx,
                    w.text_mask,
                    w.empty_ctx[None],
                    w.empty_mask[None],
                    options.sampling_steps,
                    options.guidance,
                    dtype,
                )

            return call, lambda: None

        yield batch, setup


def _measure_group(
    template: Measurement, setting: Setting, options: BenchOptions, device: torch.device, memory: PeakMemory
) -> Iterator[Measurement]:
    """Every batch size of one (model, measure, loop): a record each, timed or marked out of memory."""
    accounting = account(template.name, setting)

    def record(batch: int) -> Measurement:
        return dataclasses.replace(
            template,
            family=accounting.family,
            batch_size=batch,
            params=accounting.params,
            gflops_per_image=flops_per_image(template.measure, accounting, options),
        )

    if template.measure == LOOP:  # the whole loop times itself from its own log
        for batch in options.batch_sizes:
            result = record(batch)
            memory.reset()
            result.timing = toolkit.loop_timing(template.name, setting, options, batch)
            result.peak_memory_gib = memory.peak_gib()
            yield result
        return

    done = set()
    try:
        memory.reset()
        for batch, setup in _sessions(
            template.measure, template.impl, template.name, setting, options, device
        ):
            result = record(batch)
            memory.reset()
            try:
                call, close = setup()
                try:
                    result.timing = time_calls(call, device, options.warmup, options.steps)
                    result.peak_memory_gib = memory.peak_gib()
                finally:
                    close()
                    del call, close
            except torch.cuda.OutOfMemoryError:
                result.error = OUT_OF_MEMORY
            done.add(batch)
            yield result
    except torch.cuda.OutOfMemoryError:  # the model itself did not fit
        for batch in options.batch_sizes:
            if batch not in done:
                failed = record(batch)
                failed.error = OUT_OF_MEMORY
                yield failed
    memory.reset()


def run_benchmark(options: BenchOptions, progress: bool = True) -> BenchReport:
    options.check_names()
    settings = options.settings()
    if LOOP in options.measures and not options.pixel:
        raise UserError("--measure loop trains in the shapes world (pixel space): add --pixel")
    if TRAIN in options.measures or LOOP in options.measures:
        from t2iscale.train.distributed import batch_geometry

        for batch in options.batch_sizes:  # a bad --set fails before any work
            batch_geometry(options.recipe(batch), world_size=1)
    device = resolve_device(options.device)
    if options.baseline == "eager" and (
        options.compile == "off" or (options.compile == "auto" and device.type == "cpu")
    ):
        raise UserError(
            f"--baseline eager compares a compiled path with itself uncompiled, but --compile {options.compile} "
            f"compiles nothing{' on the CPU' if options.compile == 'auto' else ''}: give --compile full or regional"
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)  # CUDA events and accelerate use the current device
    memory = PeakMemory(device)
    described = describe_device(device, options, memory)

    groups = [
        (setting, name, measure, impl)
        for setting in settings
        for name in options.names
        for measure in options.measures
        for impl in (
            TOOLKIT,
            *((STOCK,) if options.with_stock(measure) else ()),
            *((EAGER,) if options.with_eager(measure) else ()),
        )
    ]
    bar = progress_bar(
        total=len(groups) * len(options.batch_sizes), enabled=progress, desc="bench", unit="run"
    )
    measurements: list[Measurement] = []
    for setting, name, measure, impl in groups:
        bar.set_description(f"bench {measure} {impl} {name} {setting.resolution}px")
        template = Measurement(
            measure=measure,
            impl=impl,
            name=name,
            family="",
            resolution=setting.resolution,
            batch_size=0,
            params=0,
            gflops_per_image=0.0,
            peak_tflops=described["peak_tflops"],
        )
        for result in _measure_group(template, setting, options, device, memory):
            measurements.append(result)
            bar.update(1)
    bar.close()
    toolkit.reset_accelerate_state()  # leave no mixed-precision state behind for later work in this process

    add_ratios(measurements, options.names[0])
    order = {name: index for index, name in enumerate(options.names)}
    measure_order = {measure: index for index, measure in enumerate((FORWARD, TRAIN, LOOP, SAMPLING))}
    impl_order = {TOOLKIT: 0, EAGER: 1, STOCK: 2}
    measurements.sort(
        key=lambda m: (
            measure_order[m.measure],
            m.resolution,
            m.batch_size,
            order[m.name],
            impl_order[m.impl],
        )
    )
    return BenchReport(options, described, measurements)

"""The inputs of the coming training steps, made on a background thread while the device trains.

A step's inputs (`t2iscale.train.sources.StepInputs`: this process's slice of the global batch, its noise, timesteps
and caption-dropout draws) are functions of (run seed, step, data position) alone, so making them ahead changes
nothing in what is trained: a run with `data.prefetch_batches = 0` (made in the loop) and one with 2 train
bit-identical models (tested).

On CUDA the tensors are copied into pinned (page-locked) host memory on the same thread, so the step's
`.to(device, non_blocking=True)` copies overlap with the device's work instead of stalling the host. The data
source is touched by the background thread only; what a checkpoint needs from it (its position, and its counters of
bad samples) is captured right after each batch and travels with it, so a checkpoint stores the position of the
last batch *trained on*, not of the last one made.

`auto` (the default) makes 2 batches ahead on CUDA and none on the CPU, where the model and the data share the same
cores and a second thread only competes for them (docs/bench.md, "Measurements the defaults rest on").

An error while making inputs (a corrupt shard, too many bad samples) is raised in the training loop at the step that
would have used them: the steps before it train and checkpoint as they would without the prefetcher.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable
from typing import Literal

import torch

from t2iscale.train.sources import StepInputs

AUTO_DEPTH_CUDA = 2


def resolve_prefetch(depth: int | Literal["auto"], device: torch.device) -> int:
    """'auto' -> 2 batches ahead on CUDA, 0 elsewhere (see above); a number as given."""
    if depth != "auto":
        return depth
    return AUTO_DEPTH_CUDA if device.type == "cuda" else 0


def pinned(inputs: StepInputs) -> StepInputs:
    """A copy whose tensors sit in pinned host memory (CUDA only), for asynchronous host-to-device copies."""
    batch = inputs.batch
    return dataclasses.replace(
        inputs,
        batch=dataclasses.replace(
            batch, x0=_pin(batch.x0), text_ctx=_pin(batch.text_ctx), text_mask=_pin(batch.text_mask)
        ),
        noise=_pin(inputs.noise),
        time=_pin(inputs.time),
        # drop: (b,) bools, read on the host (learned text) or moved once with the text context (prepared data)
    )


def _pin(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.pin_memory()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """`next()` returns the inputs of steps first_step, first_step + 1, ... in order; `depth` of them are made
    ahead on a daemon thread (depth 0: each is made inside `next()`, on the calling thread), in pinned memory
    with `pin_memory` (CUDA). With `end_step`, none is made for end_step or later (the run ends there).

    Use as a context manager, or call `close()`: it stops the thread, which otherwise waits for room in the queue.
    """

    def __init__(
        self,
        make: Callable[[int], StepInputs],
        first_step: int,
        depth: int,
        pin_memory: bool = False,
        end_step: int | None = None,
    ):
        if depth < 0:
            raise ValueError(f"prefetch depth must be >= 0, got {depth}")
        self._make = (lambda step: pinned(make(step))) if pin_memory else make
        self._next_step, self.depth, self.end_step = first_step, depth, end_step
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._thread = None
        if depth:
            self._thread = threading.Thread(
                target=self._produce, args=(first_step,), name="t2iscale-prefetch", daemon=True
            )
            self._thread.start()

    @classmethod
    def for_device(
        cls,
        make: Callable[[int], StepInputs],
        first_step: int,
        device: torch.device,
        depth: int | Literal["auto"] = "auto",
        end_step: int | None = None,
    ) -> Prefetcher:
        """The prefetcher the loop (and the benchmark's training step) uses on `device`: `depth` resolved there
        (`resolve_prefetch`), the inputs in pinned memory on CUDA."""
        depth = resolve_prefetch(depth, device)
        return cls(make, first_step, depth, pin_memory=device.type == "cuda", end_step=end_step)

    def _produce(self, step: int) -> None:
        while not self._stop.is_set() and (self.end_step is None or step < self.end_step):
            try:
                item = self._make(step)
            except BaseException as error:  # handed to the loop, which raises it at this step
                item = _Failed(error)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failed):
                return
            step += 1

    def next(self) -> StepInputs:
        step = self._next_step
        self._next_step += 1
        if self._thread is None:
            return self._make(step)
        while True:
            try:
                item = self._queue.get(timeout=1.0)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError(
                        f"no inputs for step {step}: the prefetch thread has stopped"
                    ) from None
        if isinstance(item, _Failed):
            raise item.error
        assert item.step == step, (item.step, step)
        return item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""CUDA-graph replay of a backbone's forward pass for sampling (sampling latency at small batch).

At small batch a sampler step is bound by kernel launches, not arithmetic: a batch-1 forward of `sdxl` takes about
the same time at 256 px as at 1024 px (docs/bench.md), i.e. the GPU waits on the Python side issuing a thousand
small kernels. A CUDA graph records those launches once and replays them with one call, so the 50 DDIM steps of
the evaluation pay the launch cost once per input shape instead of once per step.

`GraphedForward(backbone)` is called like the backbone, `(x, t, text_ctx, text_mask) -> prediction`:
- on CUDA, the first call with a new signature (shapes, dtypes, autocast state) warms the model up on a side stream
  and captures one graph with its own static input buffers; every call copies its inputs into those buffers,
  replays the graph and returns a copy of the static output;
- anywhere else it calls the backbone directly: on the CPU, for a signature whose capture failed, and for a backbone
  with `torch.compile`d regions (a training run's, evaluated along training), whose capture was never checked on
  a GPU here.

The graphs read the parameters where they live, so in-place weight updates (an optimizer step, `load_state_dict`,
swapping in EMA weights with `copy_`) are seen by later replays; replacing parameter tensors is not. Each graph
holds its activation memory until the wrapper is dropped: keep one wrapper per generate call or evaluation.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch
from torch import nn

# Eager passes before capture: the first one allocates lazily created state (cuBLAS workspaces, attention
# backends' buffers, compiled kernels), so none of that happens while the graph records.
WARMUP_PASSES = 2


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor | None, ...]  # static x, t, text_ctx, text_mask (mask may be None)
    output: torch.Tensor


def _signature(tensors: tuple[torch.Tensor | None, ...], device: torch.device) -> tuple:
    described = tuple(None if t is None else (tuple(t.shape), t.dtype, t.device) for t in tensors)
    autocast = torch.is_autocast_enabled(device.type)
    return described, autocast, torch.get_autocast_dtype(device.type) if autocast else None


def compiled_submodules(module: nn.Module) -> list[nn.Module]:
    """`module` and those of its submodules that were compiled in place (`nn.Module.compile`)."""
    return [sub for sub in module.modules() if getattr(sub, "_compiled_call_impl", None) is not None]


def has_compiled_regions(module: nn.Module) -> bool:
    return bool(compiled_submodules(module))


def _uncached_autocast(device_type: str):
    """The caller's autocast with its weight-cast cache off. Cached bf16 copies of the weights live outside the graph
    and are freed when the caller's autocast region ends, so a graph that read them would replay on freed memory;
    uncached, the casts are kernels inside the graph (as in eager sampling, whose autocast region is one step)."""
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.get_autocast_dtype(device_type), cache_enabled=False)


class GraphedForward:
    def __init__(self, backbone: nn.Module, enabled: bool = True):
        self.backbone = backbone
        self.enabled = enabled and not has_compiled_regions(backbone)
        self.graphs: dict[tuple, _Captured | None] = {}  # None: capture failed, run eagerly
        self.pool = None  # one memory pool shared by this wrapper's graphs (they never run concurrently)

    def __call__(
        self, x: torch.Tensor, t: torch.Tensor, text_ctx: torch.Tensor, text_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        inputs = (x, t, text_ctx, text_mask)
        if not (self.enabled and x.is_cuda):
            return self.backbone(*inputs)
        key = _signature(inputs, x.device)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs)
        captured = self.graphs[key]
        if captured is None:
            return self.backbone(*inputs)
        for static, value in zip(captured.inputs, inputs):
            if static is not None:
                static.copy_(value)
        captured.graph.replay()
        return captured.output.clone()  # the next replay overwrites the static output

    @property
    def captured(self) -> int:
        return sum(entry is not None for entry in self.graphs.values())

    def _capture(self, inputs: tuple[torch.Tensor | None, ...]) -> _Captured | None:
        static = tuple(None if value is None else value.clone() for value in inputs)
        device_type = inputs[0].device.type
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), _uncached_autocast(device_type):
            for _ in range(WARMUP_PASSES):
                self.backbone(*static)
        torch.cuda.current_stream().wait_stream(side)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self.pool), _uncached_autocast(device_type):
                output = self.backbone(*static)
        except RuntimeError as error:  # an op that cannot be captured (a host sync, a CPU tensor read)
            warnings.warn(
                f"CUDA graph capture of {type(self.backbone).__name__} failed, sampling without graphs: {error}",
                stacklevel=3,
            )
            return None
        return _Captured(graph, static, output)

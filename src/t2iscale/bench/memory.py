"""Peak memory of one measurement.

CUDA: `torch.cuda.max_memory_allocated` since a reset taken right before the measurement (after freeing the
previous model), so it covers what this measurement holds: weights, optimizer state, EMA, activations.
CPU: the process's peak resident set size (VmHWM). Linux resets it when "5" is written to /proc/self/clear_refs,
so each measurement gets its own peak; where that is not allowed the number is the peak since the process
started (said in `kind`). On the CPU it includes the Python process itself (libraries, allocator caches).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
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


# --- training state per process: DDP against FSDP (docs/fsdp.md) -------------------------------------------------

# Bytes per parameter of what training keeps between steps, in the recipe's precision: fp32 weights (bf16 is
# autocast, not stored), fp32 gradients, AdamW's two fp32 moments, the fp32 EMA. (Gradients exist from the backward
# to the optimizer step, so they count towards the peak.)
STATE_BYTES_PER_PARAM = {"weights": 4, "gradients": 4, "optimizer": 8, "ema": 4}


@dataclass(frozen=True)
class StateMemory:
    """Bytes one process holds for the training state of an N-parameter model (analytic).

    `gathered`: FSDP only, the whole weights in flight while a unit computes (the root unit for the whole step,
    plus the largest block and the next one prefetched, in the all-gather dtype) and that block's whole gradients
    (fp32) before they are reduce-scattered. Activations are not counted: they depend on batch and resolution,
    not on DDP or FSDP."""

    name: str
    parallel: str  # "ddp" or "fsdp"
    world_size: int
    params: int
    weights: float
    gradients: float
    optimizer: float
    ema: float
    gathered: float = 0.0

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.ema + self.gathered


def state_memory(
    name: str,
    params: int,
    parallel: str,
    world_size: int,
    *,
    ema: bool = True,
    root_params: int = 0,
    largest_unit_params: int = 0,
    gather_bytes: int = 2,
) -> StateMemory:
    """The analytic per-process training state (STATE_BYTES_PER_PARAM): DDP keeps all of it on every process;
    FSDP keeps 1/world_size of every tensor, plus what is gathered (see StateMemory). `gather_bytes`: 2 for bf16
    all-gathers (recipe.mixed_precision bf16), 4 for fp32. ValueError for an unknown `parallel`."""
    if parallel not in ("ddp", "fsdp"):
        raise ValueError(f"parallel must be 'ddp' or 'fsdp', not {parallel!r}")
    share = 1 / world_size if parallel == "fsdp" else 1.0
    per_param = {k: v * params * share for k, v in STATE_BYTES_PER_PARAM.items()}
    if not ema:
        per_param["ema"] = 0.0
    gathered = 0.0
    if parallel == "fsdp":
        gathered = (root_params + 2 * largest_unit_params) * gather_bytes + largest_unit_params * 4
    return StateMemory(name, parallel, world_size, params, **per_param, gathered=gathered)


def fsdp_units(backbone: torch.nn.Module) -> tuple[int, int]:
    """(parameters outside every FSDP unit, parameters of the largest unit) of a backbone, as FSDP wraps it
    (`t2iscale.train.distributed`: one unit per repeated block)."""
    from t2iscale.train.compile import repeated_blocks

    blocks = repeated_blocks(backbone)  # never nested in one another in the zoo's families
    inside = {id(p) for block in blocks for p in block.parameters()}
    root = sum(p.numel() for p in backbone.parameters() if id(p) not in inside)
    largest = max((sum(p.numel() for p in block.parameters()) for block in blocks), default=0)
    return root, largest


def zoo_state_memory(names, world_sizes, setting=None, *, gather_bytes: int = 2) -> list[StateMemory]:
    """DDP and FSDP rows for zoo backbones, built on the meta device (no weights allocated): parameters from
    `numel` (equal to the zoo's accounting), the units from the real module tree."""
    from t2iscale.zoo.backbone import build
    from t2iscale.zoo.setting import PAPER_SETTING

    rows = []
    for name in names:
        backbone = build(name, setting or PAPER_SETTING, device="meta")
        params = sum(p.numel() for p in backbone.parameters())
        root, largest = fsdp_units(backbone)
        rows.append(state_memory(name, params, "ddp", 1))
        for world_size in world_sizes:
            rows.append(
                state_memory(
                    name,
                    params,
                    "fsdp",
                    world_size,
                    root_params=root,
                    largest_unit_params=largest,
                    gather_bytes=gather_bytes,
                )
            )
    return rows


def measured_state_bytes(model: torch.nn.Module, optimizer, ema=None) -> dict[str, int]:
    """Bytes this process actually holds for the training state: its (local shards of the) weights, AdamW state
    and EMA, read from the tensors themselves. Gradients are freed by every step's zero_grad(set_to_none), so they
    are reported as the size of the weights they mirror."""
    from torch.distributed.tensor import DTensor

    def local_bytes(tensor: torch.Tensor) -> int:
        local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
        return local.numel() * local.element_size()

    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
    moments = [
        value
        for state in optimizer.state.values()
        for key, value in state.items()
        if key != "step" and isinstance(value, torch.Tensor)
    ]
    weights = sum(local_bytes(p) for p in trained)
    return {
        "weights": weights,
        "gradients": weights,
        "optimizer": sum(local_bytes(m) for m in moments),
        "ema": sum(local_bytes(s) for s in ema.shadow_params) if ema is not None else 0,
    }


def format_state_table(rows: list[StateMemory]) -> str:
    """A markdown table, GB (1e9 bytes) per process."""
    lines = [
        "| backbone | params | mode | processes | weights | gradients | AdamW | EMA | gathered | total GB/process |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.weights, row.gradients, row.optimizer, row.ema, row.gathered, row.total]
        lines.append(
            f"| `{row.name}` | {row.params / 1e9:.2f}B | {row.parallel} | "
            f"{row.world_size if row.parallel == 'fsdp' else 'any'} | "
            + " | ".join(f"{value / 1e9:.2f}" for value in cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    """`python -m t2iscale.bench.memory [NAME...] [--world-sizes 8,64]`: the table of docs/fsdp.md."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m t2iscale.bench.memory", description=main.__doc__)
    parser.add_argument("names", nargs="*", default=list(LARGEST_PAPER_UNETS))
    parser.add_argument("--world-sizes", default="8,64", help="comma-separated numbers of processes")
    parser.add_argument("--gather-bytes", type=int, default=2, help="2: bf16 all-gathers, 4: fp32")
    args = parser.parse_args(argv)
    world_sizes = [int(part) for part in args.world_sizes.split(",") if part]
    print(format_state_table(zoo_state_memory(args.names, world_sizes, gather_bytes=args.gather_bytes)))
    return 0


# The paper's largest backbones (Li et al., CVPR 2024, Tables 1-2): SDXL-layout UNets scaled in C and TD, IF-XL.
LARGEST_PAPER_UNETS = ("sdxl-c384-td4_12", "sdxl-c320-td4_16", "if-xl", "sdxl")


if __name__ == "__main__":
    raise SystemExit(main())

"""Distributed glue: Accelerate when launched with several processes, plain PyTorch with one."""

from __future__ import annotations

import torch

from t2iscale.errors import UserError


def make_accelerator(recipe):
    from accelerate import Accelerator

    from t2iscale.train.device import resolve_mixed_precision

    # On a machine without CUDA, `cpu=True` makes accelerate use gloo for torchrun/accelerate-launched processes.
    cpu = not torch.cuda.is_available()
    device = torch.device("cpu") if cpu else torch.device("cuda")
    mixed_precision = resolve_mixed_precision(recipe.mixed_precision, device)
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision)


def batch_geometry(recipe, world_size: int) -> tuple[int, int, int]:
    """(global batch, micro-batch per process, accumulation steps), checked to multiply out exactly."""
    global_batch = recipe.global_batch
    if global_batch % world_size:
        raise UserError(
            f"recipe.global_batch {global_batch} is not divisible by the number of processes {world_size}"
        )
    per_process = global_batch // world_size
    micro_batch = recipe.micro_batch or per_process
    if per_process % micro_batch:
        raise UserError(
            f"recipe.micro_batch {micro_batch} does not divide the per-process batch {per_process} "
            f"(global_batch {global_batch} over {world_size} processes)"
        )
    return global_batch, micro_batch, per_process // micro_batch

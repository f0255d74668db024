"""Distributed glue: Accelerate when launched with several processes, plain PyTorch with one.

`recipe.parallel` chooses how several processes share the training state (docs/fsdp.md):

- `ddp`: every process holds all weights, gradients, AdamW moments and the EMA (20 bytes per parameter in fp32);
  gradients are all-reduced.
- `fsdp`: FSDP2 (`torch.distributed.fsdp.fully_shard`) through accelerate's `FullyShardedDataParallelPlugin`: each
  process keeps 1/W of every tensor, the weights of one block are all-gathered just for its forward and backward,
  gradients are reduce-scattered. The EMA is kept over the shards (each process averages its own shard), so it is
  sharded too. The paper trained its largest UNets this way: `sdxl-c384-td4_12` (4.07B parameters) needs 81 GB of
  training state per GPU under DDP before any activation, and 10 GB under FSDP over 8 GPUs.

With one process both modes are plain PyTorch (there is nothing to shard). Checkpoints under FSDP stay sharded
(torch.distributed.checkpoint, one file per process; `t2iscale.train.checkpoint`); the final weights and the EMA
are gathered to the main process and saved in diffusers format exactly as under DDP (`save_final_weights`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import weakref
from pathlib import Path

import torch

from t2iscale.errors import UserError

# The unit FSDP gathers at a time: the zoo's repeated blocks (the same set regional compilation uses). Each block's
# weights are all-gathered before its forward and freed after, so the unsharded peak is one or two blocks, not the
# model; what lies outside every block (stem, heads, time embedding, the learned text encoder) forms the root unit.
from t2iscale.train.compile import REPEATED_BLOCKS, repeated_blocks


def make_accelerator(recipe):
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    from t2iscale.train.device import resolve_mixed_precision

    # On a machine without CUDA, `cpu=True` makes accelerate use gloo for torchrun/accelerate-launched processes.
    cpu = not torch.cuda.is_available()
    device = torch.device("cpu") if cpu else torch.device("cuda")
    mixed_precision = resolve_mixed_precision(recipe.mixed_precision, device)
    plugin = fsdp_plugin(mixed_precision) if recipe.parallel == "fsdp" else None
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision, fsdp_plugin=plugin)
    if (
        plugin is not None and accelerator.distributed_type != DistributedType.NO
    ):  # launched, not plain python
        # accelerate turns FSDP on only for accelerator devices (MULTI_GPU and kin) and silently trains DDP on CPUs,
        # although FSDP2 itself runs on CPU processes over gloo; and every later `AcceleratorState()` (accelerate's
        # optimizer wrapper makes one) copies the process state's distributed type over the FSDP it had set.
        # Setting FSDP in both shared states is all its FSDP2 path needs, on CPUs (the tests) as on GPUs.
        from accelerate.state import PartialState

        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


def fsdp_plugin(mixed_precision: str):
    """FSDP2, sharded checkpoints, one unit per repeated block (class names filled in by `prepare`).

    Mixed precision stays the recipe's: bf16 autocast around the forward as under DDP (`prepare`), bf16 weights for
    the all-gathers (half the traffic and the unsharded memory), gradients reduced in fp32 like DDP's all-reduce,
    inputs left as they are (the objective computes its loss in fp32)."""
    from accelerate import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import MixedPrecisionPolicy

    from t2iscale.train.device import autocast_dtype

    low = autocast_dtype(mixed_precision)
    policy = (
        MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32, cast_forward_inputs=False)
        if low is not None
        else None
    )
    return FullyShardedDataParallelPlugin(
        fsdp_version=2,
        reshard_after_forward=True,  # ZeRO-3: weights are gathered again for the backward
        state_dict_type="SHARDED_STATE_DICT",
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=list(REPEATED_BLOCKS),
        mixed_precision_policy=policy,
    )


def is_sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


@dataclasses.dataclass
class _Unsharded:
    """The main process's parameter-free copy of the model (meta tensors), filled with gathered weights to save."""

    model: torch.nn.Module
    names: dict[int, str]  # id of a submodule of the live model -> its name (to find it in the copy)


# The live (sharded) model -> its parameter-free copy; held only while the model lives.
_UNSHARDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy whose parameters are meta tensors: the module tree and its code for the price of no weights.
    Buffers are copied for real (they are few and small, and non-persistent ones are in no state dict)."""
    memo = {
        id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
        for p in model.parameters()
    }
    return copy.deepcopy(model, memo)


def prepare(accelerator, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """accelerate's `prepare(model, optimizer)`. Under FSDP the model is sharded in place (its parameters become
    DTensor shards, and the optimizer is switched to them): read the trained parameters from the model again."""
    if not is_sharded(accelerator):
        return accelerator.prepare(model, optimizer)
    _UNSHARDED[model] = _Unsharded(
        _meta_copy(model), {id(module): name for name, module in model.named_modules()}
    )
    present = sorted({type(block).__name__ for block in repeated_blocks(model)})
    accelerator.state.fsdp_plugin.transformer_cls_names_to_wrap = present
    if accelerator.native_amp:
        # accelerate's FSDP2 path wraps no autocast (its DDP path does): the same bf16 autocast as under DDP, so
        # normalizations and the loss keep running in fp32.
        model.forward = accelerator.autocast()(model.forward)
    return accelerator.prepare(model, optimizer)


# --- the EMA of a sharded model ---------------------------------------------------------------------------------


def trained_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    """The trained parameters as the EMA sees them. Under FSDP: each parameter's local shard, a plain tensor that
    shares its storage (AdamW updates it in place), so the EMA's update is one fused pass over plain tensors with
    no DTensor dispatch (which, on the first step, costs time quadratic in the number of tensors). They keep
    requires_grad, by which diffusers' EMAModel tells the averaged tensors from the copied ones."""
    from torch.distributed.tensor import DTensor

    return [
        p.to_local().detach().requires_grad_() if isinstance(p, DTensor) else p
        for p in model.parameters()
        if p.requires_grad
    ]


def _as_shards(tensors: list[torch.Tensor], model: torch.nn.Module) -> list[torch.Tensor]:
    """Local shards (the EMA's) as DTensors laid out like the model's trained parameters (no copy)."""
    from torch.distributed.tensor import DTensor

    like = [p for p in model.parameters() if p.requires_grad]
    return [
        DTensor.from_local(t, p.device_mesh, p.placements, run_check=False, shape=p.shape, stride=p.stride())
        if isinstance(p, DTensor)
        else t
        for t, p in zip(tensors, like, strict=True)
    ]


def register_ema(accelerator, ema, model: torch.nn.Module) -> None:
    """Checkpoint the EMA with everything else. Under DDP accelerate pickles it from the main process; under FSDP
    its shadow weights are shards, saved and loaded by every process (`t2iscale.train.checkpoint`)."""
    if not is_sharded(accelerator):
        accelerator.register_for_checkpointing(ema)
        return
    from t2iscale.train.checkpoint import load_sharded_ema, save_sharded_ema

    def shards():
        return _as_shards(ema.shadow_params, model)

    accelerator.register_save_state_pre_hook(
        lambda _models, _weights, folder: save_sharded_ema(ema, shards(), folder)
    )
    accelerator.register_load_state_pre_hook(lambda _models, folder: load_sharded_ema(ema, shards(), folder))


def gathered_ema(accelerator, ema, model: torch.nn.Module):
    """Collective under FSDP: an EMA whose shadow weights are whole tensors on the CPU of the main process (None on
    the others). Under DDP the EMA itself."""
    if ema is None or not is_sharded(accelerator):
        return ema
    from torch.distributed.tensor import DTensor

    full = []
    for shadow in _as_shards(
        ema.shadow_params, model
    ):  # one at a time: the main process's peak is the whole EMA
        whole = shadow.full_tensor() if isinstance(shadow, DTensor) else shadow
        full.append(whole.cpu() if accelerator.is_main_process else None)
        del whole
    if not accelerator.is_main_process:
        return None
    copied = copy.copy(ema)
    copied.shadow_params, copied.temp_stored_params = full, None
    return copied


def gathered_components(accelerator, components):
    """Collective under FSDP: `components` with whole weights in the model, backbone and text encoder, on the CPU
    of the main process (None on the others). Under DDP the components themselves.

    The main process holds the gathered weights once (4 bytes per parameter: 16 GB for `sdxl-c384-td4_12`)."""
    if not is_sharded(accelerator):
        return components
    unsharded = _UNSHARDED[components.model]
    # whole tensors on the CPU of process 0, {} elsewhere
    state = accelerator.get_state_dict(components.model)
    if not accelerator.is_main_process:
        return None
    model = copy.deepcopy(unsharded.model)  # meta tensors: costs nothing, and the kept copy stays empty
    model.load_state_dict(state, assign=True)  # strict: every weight must have arrived

    def counterpart(module):
        return None if module is None else model.get_submodule(unsharded.names[id(module)])

    return dataclasses.replace(
        components,
        model=model,
        backbone=counterpart(components.backbone),
        text_encoder=counterpart(components.text_encoder),
    )


@contextlib.contextmanager
def weights_for_hooks(accelerator, components, ema):
    """Collective under FSDP: yields (components, EMA) for the training hooks. The main process gets whole
    weights on its device, gathered from the shards and dropped afterwards (evaluation along training samples from
    them); the other processes, and every process under DDP, get the live ones."""
    if not is_sharded(accelerator):
        yield components, ema
        return
    whole = gathered_components(accelerator, components)
    whole_ema = gathered_ema(accelerator, ema, components.model)
    if whole is None:
        yield components, ema
        return
    whole.model.to(accelerator.device)
    if whole_ema is not None:
        whole_ema.to(accelerator.device)
    yield whole, whole_ema


def save_final_weights(accelerator, components, folder: Path, ema=None) -> None:
    """Collective: the final weights (and EMA weights) in diffusers format, written by the main process.

    Under FSDP the shards are gathered first, so the folder is the same as a DDP run's."""
    whole = gathered_components(accelerator, components)
    whole_ema = gathered_ema(accelerator, ema, components.model)
    if accelerator.is_main_process:
        whole.save_final(folder, whole_ema)


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

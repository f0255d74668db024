"""The one training loop: any zoo backbone, any data source, one recipe (DESIGN.md "One training loop").

Read top to bottom: the optimizer step (`train_step`, which the benchmark also times), then `train`: processes
and the run folder, build, optimizer / LR schedule / EMA / accelerate's wrapping, resume, the step loop with
logging, checkpoints and hooks, the final save. It never branches on the backbone's family. One training step
reads four files: this one, `sources.py` (the batch and its per-step randomness), `model.py` (caption dropout
and the conditioning) and `t2iscale.diffusion.objectives` (the loss).

Multi-process and multi-node training go through Accelerate (`accelerate launch` or `torchrun` run the same
command); with one process everything falls back to plain PyTorch.

Reproducibility is by construction: the global batch at step s, its noise, timesteps and caption-dropout draws are
functions of (run seed, step) alone, and every process takes its slice of the global batch. Hence a resumed run
repeats an uninterrupted one exactly, and N processes train the same model as one with the same global batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from t2iscale.errors import UserError
from t2iscale.train import checkpoint
from t2iscale.train.compile import compile_backbone
from t2iscale.train.components import RunComponents, build_components
from t2iscale.train.config import RecipeConfig, TrainConfig, without_speed_only_keys
from t2iscale.train.device import peak_memory_gib, peak_tflops, reset_peak_memory, resolve_mixed_precision
from t2iscale.train.distributed import batch_geometry, make_accelerator
from t2iscale.train.jsonl import JsonlWriter, truncate_after_step
from t2iscale.train.model import DenoisingModel
from t2iscale.train.prefetch import Prefetcher
from t2iscale.train.run_dir import RunDir
from t2iscale.train.sources import StepInputs

# --- the optimizer step ---------------------------------------------------------------------------------------


@dataclass
class Optimization:
    """What an optimizer step updates: the model as accelerate wrapped it, AdamW, the LR schedule, the EMA."""

    model: torch.nn.Module  # the DenoisingModel, wrapped by accelerate (DDP) when several processes train
    optimizer: torch.optim.Optimizer
    lr_schedule: torch.optim.lr_scheduler.LRScheduler
    ema: object | None  # diffusers EMAModel of the trained parameters, when the recipe keeps one
    parameters: list[torch.nn.Parameter]  # the trained ones (the EMA's)
    recipe: RecipeConfig
    micro_batch: int  # per process
    accumulation: int  # micro-batches per optimizer step

    @property
    def lr(self) -> float:
        return self.lr_schedule.get_last_lr()[0]


def prepare_optimization(
    model: DenoisingModel,
    recipe: RecipeConfig,
    accelerator,
    micro_batch: int,
    accumulation: int,
    total_steps: int,
) -> Optimization:
    """The recipe's optimizer rule (paper Sec. 3: AdamW, linear warm-up then a constant LR) around `model`."""
    from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    device = accelerator.device
    if recipe.gradient_checkpointing:
        model.backbone.model.enable_gradient_checkpointing()
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    parameters = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel updates all parameters in one pass (CUDA, and CPU since torch 2.4); see docs/bench.md.
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    optimizer = torch.optim.AdamW(
        parameters,
        lr=recipe.lr,
        betas=(recipe.adam_beta1, recipe.adam_beta2),
        eps=recipe.adam_eps,
        weight_decay=recipe.weight_decay,
        **fused,
    )
    # Warm-up, then constant (the paper's) or a cosine decay to zero at total_steps (short runs). Stepped here once
    # per optimizer step, so it is not given to accelerate (which would step it once per process).
    if recipe.lr_schedule == "cosine":
        lr_schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, total_steps)
    else:
        lr_schedule = get_constant_schedule_with_warmup(optimizer, num_warmup_steps=recipe.warmup_steps)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(lr_schedule)
    ema = None
    if recipe.uses_ema:
        from diffusers.training_utils import EMAModel

        # foreach: one fused update over all tensors instead of a Python loop per tensor.
        ema = EMAModel(parameters, decay=recipe.ema_decay, foreach=True)
        ema.to(device)
        accelerator.register_for_checkpointing(ema)
    compile_backbone(model.backbone, recipe.compile)
    return Optimization(wrapped, optimizer, lr_schedule, ema, parameters, recipe, micro_batch, accumulation)


def train_step(optimization: Optimization, inputs: StepInputs, accelerator) -> torch.Tensor:
    """One optimizer step on this process's inputs: micro-batches (gradients synchronized on the last one only),
    global-norm clipping, AdamW, the LR schedule, the EMA. Returns the mean loss, detached, on the device (no
    synchronization). `inputs` holds this process's rows of the global batch and of its draws: noise (b, C, H, W),
    time (b,), drop (b,)."""
    opt, device = optimization, accelerator.device
    total = torch.zeros((), device=device)
    for micro in range(opt.accumulation):
        part = slice(micro * opt.micro_batch, (micro + 1) * opt.micro_batch)
        last = micro == opt.accumulation - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(opt.model):
            loss = opt.model(
                noise=inputs.noise[part].to(device, non_blocking=True),
                time=inputs.time[part].to(device, non_blocking=True),
                drop=inputs.drop[part],
                **inputs.batch.micro(part, device),
            )  # DenoisingModel.forward: caption dropout, conditioning, the objective's loss
            accelerator.backward(loss / opt.accumulation)
        total += loss.detach() / opt.accumulation
    if opt.recipe.clips_gradients:
        accelerator.clip_grad_norm_(opt.model.parameters(), opt.recipe.grad_clip)
    opt.optimizer.step()
    opt.optimizer.zero_grad(set_to_none=True)
    opt.lr_schedule.step()
    if opt.ema is not None:
        opt.ema.step(opt.parameters)
    return total


# --- the training loop -------------------------------------------------------------------------------------------


class TrainingDiverged(UserError):
    """The loss became non-finite; the run's status is `diverged` and its last good checkpoint is kept."""


@dataclass
class HookContext:
    """What a hook (e.g. evaluation along training) sees after a step. Called on every process."""

    step: int
    images_seen: int
    train_flops: float
    config: TrainConfig
    run: RunDir
    accelerator: object
    components: RunComponents
    final: bool
    ema: object | None = None  # diffusers EMAModel of the trained parameters, when the recipe keeps one


@dataclass
class Hook:
    every_steps: int | None
    callback: object  # callable(HookContext)

    def due(self, step: int, final: bool) -> bool:
        return final or (self.every_steps is not None and step % self.every_steps == 0)


@dataclass
class TrainResult:
    status: str
    step: int
    images_seen: int
    train_flops: float
    run_dir: Path
    resumed_from: int = 0
    metrics: dict = field(default_factory=dict)


def _check_same_run(run: RunDir, config: TrainConfig) -> None:
    """Re-running a command resumes its run; pointing a different config at the same folder is an error."""
    if not run.config_file.is_file():
        return
    import json

    old = without_speed_only_keys(json.loads(run.config_file.read_text()))
    new = without_speed_only_keys(config.model_dump(mode="json"))
    # The budget may change (extend a run), and so may what only sets the speed (SPEED_ONLY_KEYS); everything
    # that defines *what* is trained may not.
    differing = [
        f"{section}.{key}"
        for section in ("model", "data", "text", "recipe")
        for key in sorted(set(old.get(section, {})) | set(new[section]))
        if old.get(section, {}).get(key) != new[section].get(key)
    ]
    if old.get("seed") != new["seed"]:
        differing.append("seed")
    if differing:
        raise UserError(
            f"run folder {run.path} already holds a different run (differs in {', '.join(differing)}); "
            "use a new run_dir or the original config"
        )


def _step_inputs_maker(components: RunComponents, config: TrainConfig, rank: int, world_size: int):
    """step -> StepInputs: this process's slice of the global batch and of the global batch's randomness.

    Called on the prefetch thread, in step order: after resume, the only code that touches the data source."""

    global_batch = config.recipe.global_batch

    def make(step: int) -> StepInputs:
        batch = components.source.next_batch(global_batch, rank, world_size)
        return StepInputs.draw(
            step,
            batch,
            global_batch,
            components.objective,
            config.seed,
            config.recipe.caption_dropout,
            source_state=copy.deepcopy(components.source.state_dict()),
            data_counters=components.data_counters(),
        )

    return make


def train(config: TrainConfig, hooks: Sequence[Hook] = (), progress: bool = True) -> TrainResult:
    recipe, budget = config.recipe, config.budget

    # --- Stage 1: processes, precision, the run folder ------------------------------------------------------
    accelerator = make_accelerator(recipe)
    device = accelerator.device
    mixed_precision = resolve_mixed_precision(recipe.mixed_precision, device)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    # The recipe fixes the global batch (paper: 2048) for every backbone; the hardware only decides how it is split:
    # global batch = processes x micro-batch x accumulation steps.
    global_batch, micro_batch, accumulation = batch_geometry(recipe, world_size)
    run = RunDir(config.run_dir)
    if accelerator.is_main_process:  # the resolved config is written (and printed) before any work starts
        _check_same_run(run, config)
        run.create()
        run.config_file.write_text(config.to_json() + "\n")
        checkpoint.remove_partial_checkpoints(run.checkpoints)
        if progress:
            print(f"t2iscale train: resolved config ({run.config_file})\n{config.to_json()}", file=sys.stderr)
    accelerator.wait_for_everyone()

    # --- Stage 2: data, text conditioning, backbone, objective ---------------------------------------------
    torch.manual_seed(config.seed)  # identical initial weights on every process
    components = build_components(config, device, rank, world_size)
    accounting = components.accounting  # training FLOPs: accounting.train_flops(images_seen)

    # --- Stage 3: optimizer (AdamW), learning-rate schedule, EMA, accelerate's wrapping (prepare_optimization) --
    optimization = prepare_optimization(
        components.model, recipe, accelerator, micro_batch, accumulation, budget.total_steps
    )

    # --- Stage 4: resume from the last complete checkpoint ----------------------------------------------------
    step, images_seen, resumed_from = 0, 0, 0
    latest = checkpoint.latest_checkpoint(run.checkpoints)
    if latest is not None:
        state = checkpoint.load_checkpoint(accelerator, latest)
        step, images_seen = state["step"], state["images_seen"]
        components.source.load_state_dict(state["data_positions"][rank])
        resumed_from = step
    if accelerator.is_main_process:  # lines logged after the checkpoint are logged again by the resumed steps
        for log in run.step_logs:
            truncate_after_step(log, step)
    if step >= budget.total_steps and run.read_status().get("status") == "finished":
        return TrainResult("finished", step, images_seen, accounting.train_flops(images_seen), run.path, step)
    if accelerator.is_main_process:
        run.write_status("running", step, f"resumed from step {step}" if step else "")
    metrics_log = JsonlWriter(run.metrics_file)

    def run_hooks(final: bool) -> None:
        for hook in hooks:
            if hook.due(step, final):
                context = HookContext(
                    step=step,
                    images_seen=images_seen,
                    train_flops=accounting.train_flops(images_seen),
                    config=config,
                    run=run,
                    accelerator=accelerator,
                    components=components,
                    final=final,
                    ema=optimization.ema,
                )
                hook.callback(context)
                optimization.model.train()

    # A kill between a checkpoint and its step's hooks (evaluation runs after the checkpoint) leaves them undone;
    # run them now. Hooks skip work they already did (evaluation checks eval.jsonl).
    if resumed_from:
        run_hooks(final=step >= budget.total_steps)
    peak, peak_source = peak_tflops(device, mixed_precision)

    def trainer_state(source_state: dict) -> dict:
        # Every process's data position (gathered), so the resumed run reads on where each process stopped.
        from accelerate.utils import gather_object

        return {
            "step": step,
            "images_seen": images_seen,
            "train_flops": accounting.train_flops(images_seen),
            "data_positions": gather_object([source_state]),
        }

    def stop_diverged(window_loss: float) -> None:
        message = (
            f"loss became non-finite ({window_loss}) by step {step}; the last good checkpoint is "
            f"{checkpoint.latest_checkpoint(run.checkpoints) or 'none'}. Lower recipe.lr or check the data."
        )
        if accelerator.is_main_process:
            run.write_status("diverged", step, message)
        raise TrainingDiverged(message)

    # --- Stage 5: the step loop -------------------------------------------------------------------------------
    optimization.model.train()
    bar = tqdm(
        total=budget.total_steps,
        initial=step,
        desc=f"train {config.model.backbone}",
        unit="step",
        disable=not (progress and accelerator.is_main_process),
    )
    # The loss is summed on the device and read (a host synchronization) only when logged.
    window_loss = torch.zeros((), device=device)
    window_steps, window_start, window_data_wait = 0, time.perf_counter(), 0.0
    reset_peak_memory(device)
    make_inputs = _step_inputs_maker(components, config, rank, world_size)
    depth = config.data.prefetch_batches  # 'auto' resolved on the device
    with Prefetcher.for_device(make_inputs, step, device, depth, end_step=budget.total_steps) as prefetcher:
        while step < budget.total_steps:
            # Stage 5a: this process's slice of the global batch, and the global batch's randomness (made ahead
            # on the prefetch thread; the wait is logged as data_wait_fraction: near 0 when data keeps up). The
            # inputs carry the data position after their batch, which a checkpoint after this step stores.
            wait_start = time.perf_counter()
            inputs = prefetcher.next()
            window_data_wait += time.perf_counter() - wait_start

            # Stage 5b: forward/backward over micro-batches, clip, AdamW, LR schedule, EMA.
            window_loss += train_step(optimization, inputs, accelerator)
            step += 1
            images_seen += global_batch
            window_steps += 1
            bar.update(1)

            # Stage 5c: log (mean loss over processes and steps), watch for divergence.
            is_last = step == budget.total_steps
            if step % budget.log_every_steps == 0 or is_last or step % budget.checkpoint_every_steps == 0:
                mean_loss = accelerator.reduce(window_loss, reduction="mean").item() / max(window_steps, 1)
                if not math.isfinite(mean_loss):
                    stop_diverged(mean_loss)
                seconds = time.perf_counter() - window_start
                images_per_second = window_steps * global_batch / max(seconds, 1e-9)
                record = {
                    "step": step,
                    "images_seen": images_seen,
                    "loss": mean_loss,
                    "lr": optimization.lr,
                    "images_per_s": images_per_second,
                    # model FLOPs utilization per process, against the device's peak (datasheet bf16 on GPUs)
                    "mfu": images_per_second * accounting.train_gflops_per_image / 1e3 / peak / world_size,
                    "train_flops": accounting.train_flops(images_seen),
                    "peak_memory_gib": peak_memory_gib(device),
                    "data_wait_fraction": window_data_wait / max(seconds, 1e-9),
                    "processes": world_size,
                    **inputs.data_counters,
                }
                if accelerator.is_main_process:
                    metrics_log.write(record)
                bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{images_per_second:.0f}")
                window_loss.zero_()
                window_steps, window_start, window_data_wait = 0, time.perf_counter(), 0.0

            # Stage 5d: checkpoint (atomically: a kill mid-write leaves the previous one), then hooks such as
            # evaluation, which a resume after a kill between the two runs again (Stage 4).
            if step % budget.checkpoint_every_steps == 0 or is_last:
                checkpoint.save_checkpoint(
                    accelerator,
                    run.checkpoints,
                    step,
                    trainer_state(inputs.source_state),
                    budget.keep_checkpoints,
                )
            run_hooks(is_last)
    bar.close()

    # --- Stage 6: final weights in diffusers format (`save_pretrained`: they load into a diffusers pipeline) ----
    if accelerator.is_main_process:
        components.save_final(run.final, optimization.ema)
        run.write_status("finished", step, f"peak TFLOP/s for MFU: {peak:.1f} ({peak_source})")
    accelerator.wait_for_everyone()
    return TrainResult(
        "finished", step, images_seen, accounting.train_flops(images_seen), run.path, resumed_from
    )

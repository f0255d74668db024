"""The one training loop: any zoo backbone, any data source, one recipe (DESIGN.md "One training loop").

Read top to bottom: set-up, build, resume, then the step loop. It never branches on the backbone's family.
Multi-process and multi-node training go through Accelerate (`accelerate launch` or `torchrun` run the same
command); with one process everything falls back to plain PyTorch.

Reproducibility is by construction: the global batch at step s, its noise, timesteps and caption-dropout draws are
functions of (run seed, step) alone, and every process takes its slice of the global batch. Hence a resumed run
repeats an uninterrupted one exactly, and N processes train the same model as one with the same global batch.
"""

from __future__ import annotations

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
from t2iscale.train.components import RunComponents, build_components
from t2iscale.train.config import TrainConfig, without_speed_only_keys
from t2iscale.train.device import peak_memory_gib, peak_tflops, reset_peak_memory, resolve_mixed_precision
from t2iscale.train.distributed import batch_geometry, make_accelerator
from t2iscale.train.jsonl import JsonlWriter, truncate_after_step
from t2iscale.train.run_dir import RunDir
from t2iscale.train.step import TrainStep
from t2iscale.train.step_inputs import Prefetcher, StepInputs


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
    global_batch, micro_batch, accumulation = batch_geometry(recipe, world_size)
    run = RunDir(config.run_dir)
    if accelerator.is_main_process:
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
    train_gflops_per_image = components.accounting.train_gflops_per_image

    # --- Stage 3: optimizer, learning-rate schedule, EMA (TrainStep: shared with `t2iscale bench`) -------------
    train_step = TrainStep(
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
    if accelerator.is_main_process:
        for log in run.step_logs:
            truncate_after_step(log, step)
    if step >= budget.total_steps and run.read_status().get("status") == "finished":
        return TrainResult(
            "finished", step, images_seen, images_seen * train_gflops_per_image * 1e9, run.path, step
        )
    if accelerator.is_main_process:
        run.write_status("running", step, f"resumed from step {step}" if step else "")
    metrics_log = JsonlWriter(run.metrics_file)

    def run_hooks(final: bool) -> None:
        for hook in hooks:
            if hook.due(step, final):
                context = HookContext(
                    step=step,
                    images_seen=images_seen,
                    train_flops=images_seen * train_gflops_per_image * 1e9,
                    config=config,
                    run=run,
                    accelerator=accelerator,
                    components=components,
                    final=final,
                    ema=train_step.ema,
                )
                hook.callback(context)
                train_step.model.train()

    # A kill between a checkpoint and its step's hooks (evaluation runs after the checkpoint) leaves them undone;
    # run them now. Hooks skip work they already did (evaluation checks eval.jsonl).
    if resumed_from:
        run_hooks(final=step >= budget.total_steps)
    peak, peak_source = peak_tflops(device, mixed_precision)

    def trainer_state(source_state: dict) -> dict:
        from accelerate.utils import gather_object

        return {
            "step": step,
            "images_seen": images_seen,
            "train_flops": images_seen * train_gflops_per_image * 1e9,
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
    train_step.model.train()
    bar = tqdm(
        total=budget.total_steps,
        initial=step,
        desc=f"train {config.model.backbone}",
        unit="step",
        disable=not (progress and accelerator.is_main_process),
    )
    window_loss = torch.zeros((), device=device)
    window_steps, window_start, window_data_wait = 0, time.perf_counter(), 0.0
    reset_peak_memory(device)
    make_inputs = _step_inputs_maker(components, config, rank, world_size)
    depth = config.data.prefetch_batches  # 'auto' resolved on the device
    with Prefetcher.for_device(make_inputs, step, device, depth, end_step=budget.total_steps) as prefetcher:
        while step < budget.total_steps:
            # Stage 5a: this process's slice of the global batch, and the global batch's randomness (made ahead
            # on the prefetch thread; the wait is logged as data_wait_fraction: near 0 when data keeps up).
            wait_start = time.perf_counter()
            inputs = prefetcher.next()
            window_data_wait += time.perf_counter() - wait_start

            # Stage 5b: forward/backward over micro-batches, clip, AdamW, LR schedule, EMA.
            window_loss += train_step(inputs.batch, inputs.noise, inputs.time, inputs.drop)
            step += 1
            images_seen += global_batch
            window_steps += 1
            bar.update(1)

            # Stage 5d: log (mean loss over processes and steps), watch for divergence.
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
                    "lr": train_step.lr,
                    "images_per_s": images_per_second,
                    "mfu": images_per_second * train_gflops_per_image / 1e3 / peak / world_size,
                    "train_flops": images_seen * train_gflops_per_image * 1e9,
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

            # Stage 5e: checkpoint (atomically), then hooks such as evaluation.
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

    # --- Stage 6: final weights in diffusers format --------------------------------------------------------
    if accelerator.is_main_process:
        components.save_final(run.final, train_step.ema)
        run.write_status("finished", step, f"peak TFLOP/s for MFU: {peak:.1f} ({peak_source})")
    accelerator.wait_for_everyone()
    return TrainResult(
        "finished", step, images_seen, images_seen * train_gflops_per_image * 1e9, run.path, resumed_from
    )

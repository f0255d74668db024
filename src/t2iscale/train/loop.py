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
import errno
import json
import math
import statistics
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from t2iscale.errors import UserError
from t2iscale.progress import progress_bar
from t2iscale.train import checkpoint, distributed
from t2iscale.train.compile import compile_backbone
from t2iscale.train.components import RunComponents, build_components
from t2iscale.train.config import SPEED_ONLY_KEYS, RecipeConfig, TrainConfig, without_late_defaults
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


def lr_factor(step: int, recipe: RecipeConfig, total_steps: int) -> float:
    """The factor on recipe.lr that optimizer step `step` (1, 2, ...) trains at.

    Linear warm-up that reaches the full lr at step warmup_steps (step s of W trains at s/W: with lr 1e-3 and 2
    warm-up steps, steps 1 and 2 train at 5e-4 and 1e-3); then constant (the paper's) or a cosine decay from the
    full lr at step max(W, 1) towards 0 one step after total_steps, so the last step still trains.
    """
    warmup = recipe.warmup_steps
    if step <= warmup:
        return step / warmup
    if recipe.lr_schedule == "constant":
        return 1.0
    start = max(warmup, 1)
    progress = min(1.0, (step - start) / (total_steps - start + 1))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def prepare_optimization(
    model: DenoisingModel,
    recipe: RecipeConfig,
    accelerator,
    micro_batch: int,
    accumulation: int,
    total_steps: int,
) -> Optimization:
    """The recipe's optimizer rule (paper Sec. 3: AdamW, linear warm-up then a constant LR) around `model`."""
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
    # LambdaLR's counter k is the number of optimizer steps taken, so the step about to run is k + 1 and trains at
    # lr_factor(k + 1). (Issue 14: the schedules of diffusers start at factor k / warmup, so step 1 trained at lr
    # 0; this changes the numerics of every run with a warm-up on purpose: the demo re-baselines.) Stepped
    # here once per optimizer step, so it is not given to accelerate (which would step it once per process).
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: lr_factor(k + 1, recipe, total_steps)
    )
    wrapped, optimizer = distributed.prepare(accelerator, model, optimizer)
    # FSDP replaced the parameters by their shards (DTensors): the EMA follows the shards.
    parameters = distributed.trained_tensors(model)
    accelerator.register_for_checkpointing(lr_schedule)
    ema = None
    if recipe.uses_ema:
        from diffusers.training_utils import EMAModel

        # foreach: one fused update over all tensors instead of a Python loop per tensor.
        ema = EMAModel(parameters, decay=recipe.ema_decay, foreach=True)
        ema.to(device)
        distributed.register_ema(accelerator, ema, model)  # under FSDP: saved shard by shard
    compile_backbone(model.backbone, recipe.compile)
    return Optimization(wrapped, optimizer, lr_schedule, ema, parameters, recipe, micro_batch, accumulation)


def place_training_state(optimization: Optimization) -> None:
    """Move every piece of training state next to the weights it belongs to (after a resume).

    accelerate's `load_state` restores registered objects through `torch.load(map_location="cpu")`: the EMA's
    shadow weights come back on the CPU while the model's are on the GPU, and the first EMA update after resuming
    a CUDA run fails. The optimizer state is reloaded through torch's own rule (each state tensor to its
    parameter's device; AdamW's `step` stays on the CPU unless the optimizer is fused or capturable), which this
    applies again whatever put the state where it is. The LR schedule holds no tensors; accelerate restores the
    RNG states of their own devices.
    """
    device = optimization.parameters[0].device
    if optimization.ema is not None:
        optimization.ema.to(device)
    optimizer = getattr(optimization.optimizer, "optimizer", optimization.optimizer)  # accelerate's wrapper
    optimizer.load_state_dict(optimizer.state_dict())


def resume_training_state(accelerator, folder: Path, optimization: Optimization) -> dict:
    """Restore the checkpoint in `folder` into the accelerator's registered objects, on the weights' devices;
    returns its trainer state."""
    state = checkpoint.load_checkpoint(accelerator, folder)
    place_training_state(optimization)
    return state


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
    """A loss failed the divergence test (`DivergenceTest`): the run's status is `diverged`, and it names its last
    good checkpoint, one whose weights gave a loss that passed the same test."""


# The divergence test. A loss fails it when it is not finite, or when it blows up: when it exceeds BLOWUP_FACTOR
# times the median of the last BLOWUP_HISTORY losses that passed (the first loss of a run has no reference and
# is only checked for finiteness). A diffusion loss is a mean squared error of order 1 whose batch-to-batch spread
# stays far inside this factor, while weights that blew up give losses many orders of magnitude larger or
# non-finite ones. The same test judges checkpoints: the checkpoint after step c holds the weights that compute
# the loss of step c + 1, so it is good only when that loss passes.
BLOWUP_FACTOR = 1000.0
BLOWUP_HISTORY = 100


class DivergenceTest:
    """The one test that flags divergence and judges checkpoints (see BLOWUP_FACTOR)."""

    def __init__(self, history: Iterable[float] = ()):
        self.history = deque(history, maxlen=BLOWUP_HISTORY)  # the last losses that passed, oldest first

    def failure(self, loss: float) -> str | None:
        """Why `loss` fails the test, or None when it passes (then it joins the running history)."""
        if not math.isfinite(loss):
            return f"loss became non-finite ({loss})"
        if self.history:
            median = statistics.median(self.history)
            if median > 0 and loss > BLOWUP_FACTOR * median:
                return f"loss blew up ({loss:.4g} > {BLOWUP_FACTOR:g} x the running median {median:.4g})"
        self.history.append(loss)
        return None


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


# What may differ when a run folder that holds results is trained again: the budget (extend a run; how often it
# logs and checkpoints), what only sets the speed (SPEED_ONLY_KEYS), and the evaluation batch (an image depends
# only on its caption and seed). Anything else would mix results made under different settings in one folder.
RESUMABLE_SECTIONS = ("budget",)
RESUMABLE_KEYS = SPEED_ONLY_KEYS | {"eval.batch_size", "run_dir"}


def _flat(config: dict) -> dict:
    """{'recipe.lr': 1e-4, 'seed': 0, ...}: a resolved config's keys, one level of sections deep."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


def _check_same_run(run: RunDir, config: TrainConfig) -> None:
    """Re-running a command resumes its run; a config under which the folder's results would not be comparable
    is refused, naming the keys, before anything is written. So config.json, rewritten at the start, always
    describes what was done.

    A folder whose run has done nothing (no checkpoint, no final weights: a start that failed, or a run that
    diverged before any good checkpoint) holds no results, so its config is replaced: a typo never locks it.
    """
    if not run.config_file.is_file():
        return
    latest = checkpoint.latest_checkpoint(run.checkpoints)
    if latest is None and not run.final.is_dir():
        return
    # keys added since the folder's config.json was written read as their defaults (KEYS_SINCE_FIRST_IDS)
    old = _flat(without_late_defaults(json.loads(run.config_file.read_text())))
    new = _flat(without_late_defaults(config.model_dump(mode="json")))
    differing = [
        key
        for key in sorted(set(old) | set(new), key=lambda key: (key.count("."), key))
        if old.get(key) != new.get(key)
        and key not in RESUMABLE_KEYS
        and key.split(".")[0] not in RESUMABLE_SECTIONS
    ]
    if differing:
        raise UserError(
            f"run folder {run.path} already holds a different run (differs in {', '.join(differing)}): its "
            "checkpoints and evaluations were made under the other values; use a new run_dir or the original "
            "config"
        )
    trained = checkpoint.step_of(latest) if latest is not None else 0
    total = config.budget.total_steps
    if total < trained:
        raise UserError(
            f"budget.total_steps {total} is below the {trained} steps run folder {run.path} has trained; "
            f"give at least {trained}"
        )
    old_total = old.get("budget.total_steps")
    if config.recipe.lr_schedule == "cosine" and old_total != total:
        raise UserError(
            f"budget.total_steps changes from {old_total} to {total}, but recipe.lr_schedule 'cosine' decays "
            f"over budget.total_steps, so the {trained} steps in run folder {run.path} trained on another "
            "schedule; use a new run_dir or the original budget"
        )


def _write_exit_status(run: RunDir, status: str, step: int, message: str) -> None:
    """status.json after an exit; never raises, so the exit's own error is what the user sees."""
    checkpoint.remove_partial_checkpoints(run.checkpoints)  # a write cut short (disk full) frees its space
    try:
        run.write_status(status, step, message)
    except OSError as error:
        print(
            f"t2iscale train: could not record status {status!r} in {run.status_file}: {error}",
            file=sys.stderr,
        )


@contextlib.contextmanager
def status_on_exit(run: RunDir, is_main: bool, current_step):
    """Keep status.json truthful however training ends: `failed` after an error (disk full included),
    `interrupted` after Ctrl-C or an exit request, each with the step reached and where the same command resumes;
    a divergence records its own status where it is detected. `current_step()`: the step reached."""
    try:
        yield
    except TrainingDiverged:
        raise
    except BaseException as error:
        if is_main:
            step = current_step()
            latest = checkpoint.latest_checkpoint(run.checkpoints)
            resume = f"the same command resumes from {latest.name if latest else 'the start'}"
            if isinstance(error, KeyboardInterrupt | SystemExit):
                status, what = "interrupted", f"interrupted ({type(error).__name__})"
            elif isinstance(error, OSError) and error.errno == errno.ENOSPC:
                status, what = "failed", f"disk full ({error})"
                resume = f"free space, then {resume}"
            else:
                status, what = "failed", f"{type(error).__name__}: {error}"
            _write_exit_status(run, status, step, f"{what} at step {step}; {resume}")
        raise


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
    is_main = accelerator.is_main_process
    if is_main:  # checked before anything is written
        _check_same_run(run, config)
    latest = checkpoint.latest_checkpoint(run.checkpoints)
    step = checkpoint.step_of(latest) if latest is not None else 0  # the step reached, for status.json
    with status_on_exit(run, is_main, lambda: step):
        if is_main:  # the resolved config is written (and printed) before any work starts
            run.create()
            run.write_config(config.to_json())
            checkpoint.remove_partial_checkpoints(run.checkpoints)
            if progress:
                print(
                    f"t2iscale train: resolved config ({run.config_file})\n{config.to_json()}",
                    file=sys.stderr,
                )
        accelerator.wait_for_everyone()

        # --- Stage 2: data, text conditioning, backbone, objective -----------------------------------------
        torch.manual_seed(config.seed)  # identical initial weights on every process
        components = build_components(config, device, rank, world_size)
        accounting = components.accounting  # training FLOPs: accounting.train_flops(images_seen)

        # --- Stage 3: optimizer (AdamW), learning-rate schedule, EMA, accelerate's wrapping ---------------------
        optimization = prepare_optimization(
            components.model, recipe, accelerator, micro_batch, accumulation, budget.total_steps
        )

        # --- Stage 4: resume from the last complete checkpoint, every piece of state on the weights' device ----
        images_seen, resumed_from = 0, 0  # step: the latest checkpoint's (0 without one), read in Stage 1
        divergence = DivergenceTest()
        # The newest checkpoint's step while no loss computed from its weights has been judged (DivergenceTest).
        unjudged = None
        if latest is not None:
            state = resume_training_state(accelerator, latest, optimization)
            step, images_seen = state["step"], state["images_seen"]
            components.source.load_state_dict(state["data_positions"][rank])
            divergence = DivergenceTest(state.get("loss_history", ()))
            unjudged = None if checkpoint.is_good(latest) else step
            resumed_from = step
        if is_main:  # lines logged after the checkpoint are logged again by the resumed steps
            for log in run.step_logs:
                truncate_after_step(log, step)
        if step >= budget.total_steps and run.read_status().get("status") == "finished":
            return TrainResult(
                "finished", step, images_seen, accounting.train_flops(images_seen), run.path, step
            )
        if is_main:
            run.write_status("running", step, f"resumed from step {step}" if step else "")
        metrics_log = JsonlWriter(run.metrics_file)

        def run_hooks(final: bool) -> None:
            due = [hook for hook in hooks if hook.due(step, final)]
            if not due:
                return
            # Under FSDP the main process's hooks see whole weights, gathered for them (every process takes part).
            with distributed.weights_for_hooks(accelerator, components, optimization.ema) as (seen, ema):
                for hook in due:
                    context = HookContext(
                        step=step,
                        images_seen=images_seen,
                        train_flops=accounting.train_flops(images_seen),
                        config=config,
                        run=run,
                        accelerator=accelerator,
                        components=seen,
                        final=final,
                        ema=ema,
                    )
                    hook.callback(context)
                    optimization.model.train()

        # A kill between a checkpoint and its step's hooks (evaluation runs after the checkpoint) leaves them
        # undone; run them now. Hooks skip work they already did (evaluation checks eval.jsonl).
        if resumed_from:
            run_hooks(final=step >= budget.total_steps)
        peak, peak_source = peak_tflops(device, mixed_precision)

        def trainer_state(source_state: dict) -> dict:
            # Every process's data position (gathered), so the resumed run reads on where each process stopped;
            # the divergence test's history, so the resumed run judges its losses as an uninterrupted one would.
            from accelerate.utils import gather_object

            return {
                "step": step,
                "images_seen": images_seen,
                "train_flops": accounting.train_flops(images_seen),
                "data_positions": gather_object([source_state]),
                "loss_history": list(divergence.history),
            }

        def stop_diverged(at: int, reason: str) -> None:
            # The newest checkpoint, if no loss has judged it yet, holds the weights that computed the failing
            # loss: it is moved aside (kept for inspection, never resumed from).
            if is_main and unjudged is not None:
                checkpoint.set_aside_diverged(run.checkpoints, unjudged)
            good = checkpoint.last_good_checkpoint(run.checkpoints)
            where = good or "none (no checkpoint's weights passed the test)"
            message = f"{reason} at step {at}; the last good checkpoint is {where}. Lower recipe.lr or check the data."
            if is_main:
                run.write_status("diverged", at, message)
            raise TrainingDiverged(message)

        # --- Stage 5: the step loop ---------------------------------------------------------------------------
        optimization.model.train()
        bar = progress_bar(
            total=budget.total_steps,
            initial=step,
            desc=f"train {config.model.backbone}",
            unit="step",
            enabled=progress and is_main,
        )
        # Each step's loss stays on the device and is read (a host synchronization) only when logged.
        window_losses: list[torch.Tensor] = []
        window_start, window_data_wait = time.perf_counter(), 0.0
        reset_peak_memory(device)
        make_inputs = _step_inputs_maker(components, config, rank, world_size)
        depth = config.data.prefetch_batches  # 'auto' resolved on the device
        with Prefetcher.for_device(
            make_inputs, step, device, depth, end_step=budget.total_steps
        ) as prefetcher:
            while step < budget.total_steps:
                # Stage 5a: this process's slice of the global batch, and the global batch's randomness (made
                # ahead on the prefetch thread; the wait is logged as data_wait_fraction: near 0 when data keeps
                # up). The inputs carry the data position after their batch, which a checkpoint after this step
                # stores.
                wait_start = time.perf_counter()
                inputs = prefetcher.next()
                window_data_wait += time.perf_counter() - wait_start

                # Stage 5b: forward/backward over micro-batches, clip, AdamW, LR schedule, EMA.
                lr = optimization.lr  # what this step trains at (train_step moves the schedule on)
                window_losses.append(train_step(optimization, inputs, accelerator))
                step += 1
                images_seen += global_batch
                bar.update(1)

                # Stage 5c: log (mean loss over processes and steps); each step's loss takes the divergence
                # test, which also judges the newest checkpoint by the first loss computed from its weights.
                is_last = step == budget.total_steps
                if step % budget.log_every_steps == 0 or is_last or step % budget.checkpoint_every_steps == 0:
                    losses = accelerator.reduce(torch.stack(window_losses), reduction="mean").tolist()
                    first = step - len(losses) + 1
                    for at, loss in enumerate(losses, start=first):
                        reason = divergence.failure(loss)
                        if reason is not None:
                            stop_diverged(at, reason)
                        if unjudged == at - 1:  # the checkpoint's weights computed this loss, and it passed
                            if is_main:
                                checkpoint.mark_good(
                                    run.checkpoints,
                                    unjudged,
                                    judged_by_step=at,
                                    loss=loss,
                                    keep=budget.keep_checkpoints,
                                )
                            unjudged = None
                    mean_loss = sum(losses) / len(losses)
                    seconds = time.perf_counter() - window_start
                    images_per_second = len(losses) * global_batch / max(seconds, 1e-9)
                    record = {
                        "step": step,
                        "images_seen": images_seen,
                        "loss": mean_loss,
                        "lr": lr,
                        "images_per_s": images_per_second,
                        # model FLOPs utilization per process, against the device's peak (datasheet bf16 on GPUs)
                        "mfu": images_per_second
                        * accounting.train_gflops_per_image
                        / 1e3
                        / peak
                        / world_size,
                        "train_flops": accounting.train_flops(images_seen),
                        "peak_memory_gib": peak_memory_gib(device),
                        "data_wait_fraction": window_data_wait / max(seconds, 1e-9),
                        "processes": world_size,
                        **inputs.data_counters,
                    }
                    if is_main:
                        metrics_log.write(record)
                        run.record_step(step)  # status.json's step follows the log
                    bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{images_per_second:.0f}")
                    window_losses.clear()
                    window_start, window_data_wait = time.perf_counter(), 0.0

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
                    unjudged = step
                run_hooks(is_last)
        bar.close()

        # --- Stage 6: final weights in diffusers format (`save_pretrained`: they load into a diffusers pipeline)
        # Collective: under FSDP the shards are gathered to the main process first.
        distributed.save_final_weights(accelerator, components, run.final, optimization.ema)
        if is_main:
            # Finished: no loss will judge the last checkpoint, and the good one kept for it is no longer needed.
            checkpoint.prune(run.checkpoints, budget.keep_checkpoints, keep_good=False)
            run.write_status("finished", step, f"peak TFLOP/s for MFU: {peak:.1f} ({peak_source})")
        accelerator.wait_for_everyone()
    return TrainResult(
        "finished", step, images_seen, accounting.train_flops(images_seen), run.path, resumed_from
    )

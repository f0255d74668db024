"""The toolkit side of a benchmark: exactly what training and evaluation run, fed a synthetic batch.

- forward: a zoo `Backbone` through its common signature, in eval mode under inference mode and the autocast
  that evaluation uses;
- train: the loop's `train_step` (micro-batches, backward, clipping, fused AdamW, LR schedule, EMA) with the
  optimizer the loop prepares (`prepare_optimization`), around a `DenoisingModel` with precomputed text (the
  prepared-data path of the paper's setting), with the per-step noise / time / caption-dropout draw the loop makes;
- loop: the whole training loop (`t2iscale.train.loop.train`) in the shapes world, with its data pipeline, learned
  text encoder, noise draws, logging and prefetcher: timed over windows of steps from the loop's own log, so the
  loop/step ratio says what the loop adds to the bare step;
- sampling: `TextToImage.generate`, the evaluation's generate path (per-seed noise, DDIM with CFG through
  `t2iscale.diffusion.sampling.sample`), with the text encoder and the decoder replaced by stand-ins that cost
  nothing, because the stock loop has neither either.
No separate fast path exists here: a speed-up must come from the code the toolkit really runs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from t2iscale.bench.options import BenchOptions
from t2iscale.bench.timing import Timing
from t2iscale.bench.workload import Workload
from t2iscale.diffusion.objectives import make_objective
from t2iscale.errors import UserError
from t2iscale.eval.text_to_image import TextToImage
from t2iscale.train import loop
from t2iscale.train.compile import compile_backbone
from t2iscale.train.model import DenoisingModel, PrecomputedTextConditioner
from t2iscale.train.prefetch import Prefetcher
from t2iscale.train.sources import Batch, StepInputs
from t2iscale.zoo.backbone import Backbone, build
from t2iscale.zoo.setting import Setting


def autocast_dtype(options: BenchOptions) -> torch.dtype | None:
    return torch.bfloat16 if options.precision == "bf16" else None


def build_backbone(name: str, setting: Setting, options: BenchOptions, device: torch.device) -> Backbone:
    """A backbone for forward and sampling runs, with the memory-format and compile options training uses."""
    torch.manual_seed(options.seed)
    backbone = build(name, setting, device=device).eval()
    if options.channels_last:
        backbone.to(memory_format=torch.channels_last)
    # Evaluation and `t2iscale sample` load backbones uncompiled (and replay CUDA graphs instead): 'auto' is that.
    compile_backbone(backbone, "off" if options.compile == "auto" else options.compile)
    return backbone


def forward_call(backbone: Backbone, workload: Workload, options: BenchOptions):
    """A zero-argument call of one forward pass; `workload` already on the device."""
    device = workload.x0.device
    dtype = autocast_dtype(options)

    @torch.inference_mode()
    def call():
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            return backbone(
                workload.x0, workload.timesteps, workload.text_ctx, workload.text_mask
            )  # (B, C, H, W)

    return call


# --- training ---------------------------------------------------------------------------------------------------


def reset_accelerate_state() -> None:
    """Start (or leave) a clean accelerate state.

    accelerate keeps one process-wide state whose mixed precision cannot change once set; the benchmark is a
    single process that may follow other work in the same interpreter (tests, a notebook), so each toolkit
    training measurement starts from a clean state and leaves one behind. It refuses a multi-process launch.
    """
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("t2iscale bench measures one process; run it without accelerate launch / torchrun")
    AcceleratorState._reset_state(reset_partial_state=True)


class ToolkitTraining:
    """The loop's optimizer step for one (model, setting, batch size), used as the loop uses it."""

    def __init__(
        self,
        name: str,
        setting: Setting,
        options: BenchOptions,
        workloads: list[Workload],
        device: torch.device,
    ):
        from accelerate import Accelerator

        from t2iscale.train.distributed import batch_geometry

        self.recipe = options.recipe(workloads[0].batch_size)
        reset_accelerate_state()
        self.accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=self.recipe.mixed_precision)
        _, micro_batch, accumulation = batch_geometry(self.recipe, world_size=1)
        self.objective = make_objective(self.recipe.objective)
        torch.manual_seed(options.seed)
        backbone = build(name, setting, device=device)
        # Prepared real data: precomputed text, the stored empty caption for dropped captions.
        conditioner = PrecomputedTextConditioner(workloads[0].empty_ctx, workloads[0].empty_mask)
        model = DenoisingModel(backbone, conditioner, self.objective).to(device)
        # The benchmark times steady-state steps; the schedule length only matters for a cosine decay.
        self.optimization = loop.prepare_optimization(
            model, self.recipe, self.accelerator, micro_batch, accumulation, total_steps=10**9
        )
        self.optimization.model.train()
        # CPU batches, moved by train_step as in the loop; several, so no step reuses the previous one's inputs.
        batches = [
            Batch(x0=w.x0, text_ctx=w.text_ctx, text_mask=w.text_mask, global_rows=torch.arange(w.batch_size))
            for w in workloads
        ]

        def make(step: int) -> StepInputs:
            # The loop's inputs for step s, made the way the loop makes them: the draw from (seed, s), on the
            # prefetch thread, in pinned memory on CUDA.
            batch = batches[step % len(batches)]
            return StepInputs.draw(
                step, batch, len(batch.x0), self.objective, options.seed, self.recipe.caption_dropout
            )

        self.inputs = Prefetcher.for_device(make, 0, device)
        self.running_loss = torch.zeros((), device=device)

    def __call__(self) -> None:
        """One optimizer step, as the loop's stages 5a-5b make it."""
        # looked up on the module, so a test can count the calls
        self.running_loss += loop.train_step(self.optimization, self.inputs.next(), self.accelerator)

    def close(self) -> None:
        self.inputs.close()
        self.accelerator.free_memory()
        self.optimization = self.inputs = self.accelerator = None
        reset_accelerate_state()


# --- the whole loop ---------------------------------------------------------------------------------------------

LOOP_WINDOW = 5  # steps per timed window: the loop logs (and times) its steps every LOOP_WINDOW steps


def loop_config(name: str, setting: Setting, options: BenchOptions, batch: int, run_dir: str):
    """The config of a loop measurement: the shapes world ('tiny') at the bench's resolution with its learned text
    encoder at the bench's text width and length (the demo's stack: 2 layers, 4 heads where the width allows),
    the bench's recipe for `batch` images, no evaluation, one checkpoint at the end.

    Raises UserError for latent settings: the loop's own data path in a bench is the shapes world (pixels)."""
    from t2iscale.train.config import validate_config

    if setting.latent_factor != 1:
        raise UserError("--measure loop trains in the shapes world (pixel space): add --pixel")
    windows = 1 + options.warmup + options.steps
    recipe = options.recipe(batch).model_dump(mode="json")
    raw = {
        "run_dir": run_dir,
        "seed": options.seed,
        "model": {"backbone": name},
        "data": {"kind": "shapes", "world": "tiny", "resolution": setting.resolution, "size": 60000},
        "text": {
            "dim": setting.text_dim,
            "max_length": setting.text_len,
            "layers": 2,
            "heads": 4 if setting.text_dim % 4 == 0 else 1,
        },
        "recipe": recipe,
        "budget": {
            "total_steps": windows * LOOP_WINDOW,
            "log_every_steps": LOOP_WINDOW,
            "checkpoint_every_steps": windows * LOOP_WINDOW,
            "keep_checkpoints": 1,
        },
    }
    return validate_config(raw, source="bench --measure loop")


def loop_timing(name: str, setting: Setting, options: BenchOptions, batch: int) -> Timing:
    """Time the training loop per optimizer step: train `1 + warmup + steps` windows of LOOP_WINDOW steps in a
    temporary run folder and read each window's wall time from the loop's log (metrics.jsonl: images/s over the
    window). The first window (start-up, first steps) is `first_s` per step; the warm-up windows are dropped;
    each timed window gives one sample (its seconds per step)."""
    import tempfile

    from t2iscale.train.jsonl import read_jsonl
    from t2iscale.train.loop import train
    from t2iscale.train.run_dir import RunDir

    with tempfile.TemporaryDirectory(prefix="t2iscale-bench-loop-") as folder:
        config = loop_config(name, setting, options, batch, str(Path(folder) / "run"))
        reset_accelerate_state()
        try:
            train(config, progress=False)
        finally:
            reset_accelerate_state()
        records = read_jsonl(RunDir(config.run_dir).metrics_file)
    per_step = [batch / record["images_per_s"] for record in records if record.get("images_per_s")]
    return Timing(first_s=per_step[0], samples_s=tuple(per_step[1 + options.warmup :]))


# --- sampling ---------------------------------------------------------------------------------------------------


class PrecomputedPrompts(nn.Module):
    """Stands in for a frozen text encoder: caption 'prompt i' -> row i of a precomputed context, '' -> the
    empty caption. Encoding is left out of the timing on both sides (the stock loop gets the context too)."""

    def __init__(self, workload: Workload):
        super().__init__()
        self.register_buffer("ctx", workload.text_ctx)  # (B, L, D)
        self.register_buffer("mask", workload.text_mask)  # (B, L)
        self.register_buffer("empty_ctx", workload.empty_ctx[None])  # (1, L, D)
        self.register_buffer("empty_mask", workload.empty_mask[None])  # (1, L)

    @staticmethod
    def captions(count: int) -> list[str]:
        return [f"prompt {index}" for index in range(count)]

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if captions == [""]:
            return self.empty_ctx, self.empty_mask
        rows = [int(caption.removeprefix("prompt ")) for caption in captions]
        return self.ctx[rows], self.mask[rows]


class LatentsToHost:
    """Stands in for the decoder: x0 to host memory, as the stock loop ends (no VAE on either side)."""

    def __init__(self, clip_sample: bool):
        self.clip_sample = clip_sample  # pixel space clamps to [-1, 1], as the evaluation's PixelDecoder

    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        return x0.float().cpu().numpy()


def sampling_call(backbone: Backbone, workload: Workload, options: BenchOptions):
    """One call of the evaluation's generate path for the workload's batch (`workload` on the device)."""
    objective = make_objective(options.recipe(workload.batch_size).objective)
    generator = TextToImage(
        backbone,
        PrecomputedPrompts(workload),
        objective,
        LatentsToHost(clip_sample=backbone.setting.latent_factor == 1),
        autocast_dtype=autocast_dtype(options),
        cuda_graphs=options.cuda_graphs,
    )
    batch = workload.batch_size
    captions, seeds = PrecomputedPrompts.captions(batch), list(range(batch))

    def call():
        return generator.generate(
            captions, seeds, steps=options.sampling_steps, guidance=options.guidance, batch_size=batch
        )

    return call

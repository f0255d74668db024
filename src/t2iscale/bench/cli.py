"""`t2iscale bench NAME...`: forward latency, training throughput and sampling speed of zoo backbones.

Declares arguments only; torch and diffusers are imported inside the handler.
"""

from __future__ import annotations

import argparse

from t2iscale.cli import add_command
from t2iscale.train.config import COMPILE_MODES
from t2iscale.zoo.setting import PAPER_SETTING

DESCRIPTION = """\
Measure zoo backbones on this machine's device (CUDA if present, else the CPU), in the paper's setting unless
options say otherwise (256 px -> 4 x 32 x 32 latents, 77 x 1024 text context), with bf16 autocast over fp32
weights. Measures (--measure, comma-separated):
  forward   latency of one forward pass per batch size and resolution (inference mode, eval mode)
  train     one optimizer step of the toolkit's train_step, the step the training loop runs: micro-batches,
            backward, gradient clipping, AdamW (fused on CUDA), LR schedule, EMA, with the recipe's options
  loop      one step of the whole training loop (t2iscale.train.loop.train) in the shapes world (needs --pixel):
            data, learned text encoder, noise draws, logging, prefetcher; timed per window of 5 steps from the
            loop's own log; loop/step is its images/s over the train row's (add train to --measure)
  sampling  the evaluation's generate path (TextToImage: per-seed noise, DDIM N steps with CFG), per batch
--sampling is short for --measure sampling.
--baseline stock adds, per measure, the stock loop on the same config and batch: the plain diffusers model
driven as diffusers' train_text_to_image.py / pipelines do (randn_like noise, DDPMScheduler.add_noise, MSE,
backward, clipping, torch.optim.AdamW not fused, fp32 weights + bf16 autocast, no compile, no EMA; sampling:
DDIMScheduler + CFG in a Python loop). auto (default): stock next to sampling only. --baseline eager adds the
toolkit's own path with compile off next to each toolkit row when --compile is not off (speed/eager: what
compiling buys, first call's compile time in `first s`). The toolkit's sampling
replays its backbone from CUDA graphs on GPU, as evaluation does (--no-cuda-graphs: plain eager calls).

Timing: the first call is timed alone (it includes torch.compile and other one-time work), then --warmup
untimed calls, then --steps timed calls (CUDA events around each on GPU, the host clock on CPU); the table gives
the median and the interquartile range. Images/s = batch / median. MFU = FLOPs per image from the zoo's
accounting (training = 3 x forward; sampling = steps x forward, x2 with CFG) x images/s / the device's peak
(datasheet bf16 peak of known GPUs, halved for fp32; else a measured matmul). Peak memory: CUDA max allocated,
reset before each row; on the CPU the process's peak RSS. Ratios: time over the first NAME's time (same measure,
loop, resolution, batch), and toolkit images/s over stock images/s. A row that runs out of device memory says so
and the benchmark goes on.

examples:
  t2iscale bench sdxl sdxl-td4_4 --batch-sizes 1,8,64 --out bench.json
  t2iscale bench sdxl sdxl-td4_4 --measure train --baseline stock --batch-sizes 64
  # the demo's CPU setting on one core: the bare step and the whole loop
  OMP_NUM_THREADS=1 t2iscale bench sdxl-c4-td1_1 sdxl-c12-td1_1 --measure train,loop --pixel --resolutions 16 --text-dim 64 --text-len 24 --batch-sizes 32 --precision fp32
  # what compiling buys
  t2iscale bench sdxl-c8-td1_1 --measure train --compile full --baseline eager --pixel --resolutions 16 --text-dim 64 --text-len 24 --batch-sizes 32 --precision fp32
  t2iscale bench --sampling sdxl-td4_4 --batch-sizes 1,64 --steps 5
  t2iscale bench sdxl-c16-td1_2 --pixel --resolutions 32 --text-dim 64 --text-len 16 --device cpu"""


def register(subparsers):
    parser = add_command(
        subparsers,
        "bench",
        handle,
        help="measure forward latency, training and sampling throughput (MFU, memory), vs stock diffusers",
        description=DESCRIPTION,
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="zoo names; ratios are to the first")
    parser.add_argument(
        "--measure", default="forward,train", help="comma-separated: forward, train, loop, sampling"
    )
    parser.add_argument("--sampling", action="store_true", help="short for --measure sampling")
    parser.add_argument(
        "--baseline",
        default="auto",
        choices=["auto", "none", "stock", "eager"],
        help="also run the stock diffusers loop (auto: for sampling only), or the toolkit uncompiled (eager)",
    )
    parser.add_argument("--batch-sizes", default="1,8,64", help="comma-separated batch sizes")
    parser.add_argument(
        "--resolutions", default=str(PAPER_SETTING.resolution), help="comma-separated image sides in pixels"
    )
    parser.add_argument(
        "--pixel",
        action="store_true",
        help="pixel space (3 channels) instead of latents (resolution / 8, 4 ch)",
    )
    parser.add_argument("--text-dim", type=int, default=PAPER_SETTING.text_dim, help="text context width")
    parser.add_argument("--text-len", type=int, default=PAPER_SETTING.text_len, help="text context tokens")
    parser.add_argument("--steps", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls after the first call")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="regional",
        default="auto",
        choices=COMPILE_MODES,
        help="torch.compile the toolkit's backbone: each repeated block (regional, the bare flag), only the "
        "transformer blocks (regional-transformer), whole (full), or as each path does by default (auto: training "
        "regional on CUDA for 100M+ parameters; forward and sampling off)",
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="channels-last memory format for the toolkit's backbone"
    )
    parser.add_argument(
        "--cuda-graphs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sampling: replay the toolkit's backbone from CUDA graphs, as evaluation does (CUDA only)",
    )
    parser.add_argument(
        "--precision",
        default="bf16",
        choices=["bf16", "fp32"],
        help="bf16 autocast over fp32 weights, or fp32",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--sampling-steps", type=int, default=50, help="DDIM steps per generate call (paper: 50)"
    )
    parser.add_argument("--guidance", type=float, default=7.5, help="CFG scale of sampling (paper: 7.5)")
    parser.add_argument(
        "--set",
        dest="recipe_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe field for the toolkit's training step, e.g. ema_decay=null or micro_batch=16 (repeat)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--out", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar on stderr"
    )


def handle(args) -> int:
    import json
    from pathlib import Path

    from t2iscale.bench.options import BenchOptions, parse_measures, parse_positive_ints
    from t2iscale.bench.runner import run_benchmark
    from t2iscale.bench.table import table_text
    from t2iscale.errors import UserError

    if args.sampling and args.measure != "forward,train":
        raise UserError("give either --sampling or --measure, not both")
    options = BenchOptions(
        names=tuple(args.names),
        measures=("sampling",) if args.sampling else parse_measures(args.measure),
        baseline=args.baseline,
        batch_sizes=parse_positive_ints(args.batch_sizes, "--batch-sizes"),
        resolutions=parse_positive_ints(args.resolutions, "--resolutions"),
        pixel=args.pixel,
        text_dim=args.text_dim,
        text_len=args.text_len,
        steps=args.steps,
        warmup=args.warmup,
        compile=args.compile,
        channels_last=args.channels_last,
        cuda_graphs=args.cuda_graphs,
        precision=args.precision,
        device=args.device,
        sampling_steps=args.sampling_steps,
        guidance=args.guidance,
        recipe_overrides=tuple(args.recipe_overrides),
        seed=args.seed,
    )
    report = run_benchmark(options, progress=args.progress)
    results = json.dumps(report.as_dict(), indent=2)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(results + "\n")
    print(results if args.json else table_text(report))
    if args.out and not args.json:
        print(f"results: {args.out}")
    return 0

"""`t2iscale sample`: images from a trained run for given prompts and seeds.

By default a run is sampled the way its evaluation sampled it (the run's `eval.sampler_steps`, `eval.guidance` and
`eval.use_ema`), so a prompt of the evaluation set gives the report's image; flags override each setting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from t2iscale.cli import add_command


def register(subparsers):
    parser = add_command(
        subparsers, "sample", handle, help="sample images from a trained run (PNGs and a grid)"
    )
    parser.add_argument("--run", required=True, help="run folder")
    parser.add_argument("--prompt", action="append", required=True, help="a caption (repeat for several)")
    parser.add_argument("--seed", type=int, action="append", help="a seed (repeat for several; default 0)")
    parser.add_argument("--out", help="output folder (default: <run>/samples)")
    parser.add_argument(
        "--steps", type=int, help="sampler steps (default: the run's eval.sampler_steps; paper: DDIM 50)"
    )
    parser.add_argument(
        "--guidance",
        type=float,
        help="classifier-free guidance scale (default: the run's eval.guidance; paper: 7.5)",
    )
    parser.add_argument("--weights", default="final", help="final, latest or step_N (a checkpoint)")
    parser.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        help="use the EMA weights (final only; default: the run's eval.use_ema)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per sampler batch")


def handle(args) -> int:
    # Everything that can be refused is checked before torch loads (seconds): the folder, its config, the weights.
    from t2iscale.eval.generate import SamplerSettings, check_weights, read_run_config

    config = read_run_config(args.run)
    settings = SamplerSettings.of_run(
        config, steps=args.steps, guidance=args.guidance, ema=args.ema, weights=args.weights
    )
    check_weights(args.run, config, args.weights, settings.ema)

    import numpy as np

    from t2iscale.eval.text_to_image import load_text_to_image
    from t2iscale.images import make_grid, save_png

    seeds = args.seed or [0]
    out = Path(args.out) if args.out else Path(args.run) / "samples"
    print(f"sampling {args.run} ({args.weights}): {settings.describe(config)}", file=sys.stderr)
    generator = load_text_to_image(args.run, weights=args.weights, ema=settings.ema)
    pairs = [(prompt, seed) for prompt in args.prompt for seed in seeds]
    images = generator.generate(
        [prompt for prompt, _ in pairs],
        [seed for _, seed in pairs],
        steps=settings.steps,
        guidance=settings.guidance,
        batch_size=args.batch_size,
        progress=True,
    )
    for index, ((prompt, seed), image) in enumerate(zip(pairs, images)):
        path = save_png(out / f"{index:03d}_s{seed}.png", image)
        print(f"{path}\t{prompt!r}\tseed {seed}")
    upscale = max(1, 128 // images.shape[1])
    grid = save_png(out / "grid.png", make_grid(np.asarray(images), columns=len(seeds), upscale=upscale))
    print(f"grid (rows = prompts, columns = seeds): {grid}")
    return 0

"""`t2iscale sample`: images from a trained run for given prompts and seeds."""

from __future__ import annotations

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
    parser.add_argument("--steps", type=int, default=50, help="sampler steps (paper: DDIM 50)")
    parser.add_argument(
        "--guidance", type=float, default=7.5, help="classifier-free guidance scale (paper: 7.5)"
    )
    parser.add_argument("--weights", default="final", help="final, latest or step_N (a checkpoint)")
    parser.add_argument("--ema", action="store_true", help="use the EMA weights (final only)")
    parser.add_argument("--batch-size", type=int, default=64)


def handle(args) -> int:
    import numpy as np

    from t2iscale.eval.text_to_image import load_text_to_image
    from t2iscale.images import make_grid, save_png

    seeds = args.seed or [0]
    out = Path(args.out) if args.out else Path(args.run) / "samples"
    generator = load_text_to_image(args.run, weights=args.weights, ema=args.ema)
    pairs = [(prompt, seed) for prompt in args.prompt for seed in seeds]
    images = generator.generate(
        [prompt for prompt, _ in pairs],
        [seed for _, seed in pairs],
        steps=args.steps,
        guidance=args.guidance,
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

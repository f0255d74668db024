"""`t2iscale export`: a trained run as a folder a stock diffusers `StableDiffusionPipeline` loads (docs/export.md)."""

from __future__ import annotations

import sys

from t2iscale.cli import add_command


def register(subparsers):
    parser = add_command(
        subparsers,
        "export",
        handle,
        help="export a latent run as a diffusers StableDiffusionPipeline folder (same images as `sample`)",
    )
    parser.add_argument("run", help="run folder")
    parser.add_argument(
        "--out", required=True, help="new folder for the pipeline (must not exist or be empty)"
    )
    parser.add_argument("--step", type=int, help="a checkpoint's step (default: the final weights)")
    parser.add_argument(
        "--ema", action="store_true", help="the final EMA weights instead of the trained ones"
    )


def handle(args) -> int:
    from t2iscale.errors import UserError
    from t2iscale.eval.export import EXPORT_FILE, export_pipeline

    if args.step is not None and args.step < 0:
        raise UserError(f"--step must be a checkpoint's step (0 or more), got {args.step}")
    if args.ema and args.step is not None:
        raise UserError(
            "--ema exports the final EMA weights (checkpoints keep theirs for resuming only); drop --step"
        )
    if args.step is not None:
        from t2iscale.train.checkpoint import step_dir_name
        from t2iscale.train.run_dir import RunDir

        checkpoints = RunDir(args.run).checkpoints
        if not (checkpoints / step_dir_name(args.step)).is_dir():
            have = sorted(path.name for path in checkpoints.glob("step_*")) if checkpoints.is_dir() else []
            raise UserError(
                f"--step {args.step}: no checkpoint of that step in {checkpoints} (have: {', '.join(have) or 'none'});"
                " omit --step for the final weights"
            )
    weights = "final" if args.step is None else f"step_{args.step}"
    out = export_pipeline(args.run, args.out, weights=weights, ema=args.ema)
    call = out / EXPORT_FILE
    print(f"exported {args.run} ({weights}{', EMA' if args.ema else ''}) -> {out}", file=sys.stderr)
    print(f"load it with StableDiffusionPipeline.from_pretrained({str(out)!r}); sampler settings in {call}")
    return 0

"""`t2iscale eval generate`: images + manifest for an evaluation prompt set, from a trained run."""

from __future__ import annotations

from t2iscale.cli import add_command


def register(subparsers):
    parser = add_command(
        subparsers,
        "generate",
        handle,
        help="generate the evaluation prompt set from a run (PNGs + manifest.jsonl, for `eval score`)",
    )
    parser.add_argument("--run", required=True, help="run folder")
    parser.add_argument("--prompts", help="shapes-v1 or a TIFA-format file (default: the run's eval.prompts)")
    parser.add_argument(
        "--per-category", type=int, help="shapes-world prompts per category (default: the run's)"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, one image per prompt and seed")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the run's eval.sampler_steps)")
    parser.add_argument("--guidance", type=float, help="CFG scale (default: the run's eval.guidance)")
    parser.add_argument("--weights", default="final", help="final, latest or step_N")
    parser.add_argument("--ema", action="store_true", help="use EMA weights (paper: non-EMA)")
    parser.add_argument("--out", help="output folder (default: <run>/eval/generated-<weights>)")
    parser.add_argument("--batch-size", type=int, default=64)


def handle(args) -> int:
    from pathlib import Path

    from t2iscale.errors import UserError
    from t2iscale.eval.generate import generate_images
    from t2iscale.eval.prompt_source import resolve_prompts
    from t2iscale.eval.text_to_image import load_text_to_image, run_config

    config = run_config(args.run)
    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    world = config.data.world if config.data.kind == "shapes" else None
    source = resolve_prompts(
        args.prompts or config.eval.prompts,
        world=world,
        per_category=args.per_category or config.eval.per_category,
    )
    out = Path(args.out) if args.out else Path(args.run) / "eval" / f"generated-{args.weights}"
    manifest = generate_images(
        load_text_to_image(args.run, weights=args.weights, ema=args.ema),
        source,
        seeds,
        out,
        steps=args.steps or config.eval.sampler_steps,
        guidance=config.eval.guidance if args.guidance is None else args.guidance,
        batch_size=args.batch_size,
    )
    print(f"{source.description}: {len(source.prompts) * len(seeds)} images -> {manifest}")
    score_hint = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in source.score_kwargs.items())
    print(f"score them with: t2iscale eval score --manifest {manifest} {score_hint}".rstrip())
    return 0

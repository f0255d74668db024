"""`t2iscale eval generate`: images + manifest for an evaluation prompt set, from a trained run."""

from __future__ import annotations

import argparse
import sys

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
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        help="comma-separated seeds, one image per prompt and seed (default: the run's eval.seeds)",
    )
    parser.add_argument("--steps", type=int, help="sampler steps (default: the run's eval.sampler_steps)")
    parser.add_argument("--guidance", type=float, help="CFG scale (default: the run's eval.guidance)")
    parser.add_argument("--weights", default="final", help="final, latest or step_N")
    parser.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        help="use EMA weights (default: the run's eval.use_ema; paper: non-EMA)",
    )
    parser.add_argument("--out", help="output folder (default: <run>/eval/generated-<weights>)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per sampler batch")


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0,1` -> [0, 1]; anything else is a usage error naming the option."""
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("names no seed")
    return seeds


def handle(args) -> int:
    # The run folder, its config, the prompts and the weights are checked before torch loads (seconds).
    from pathlib import Path

    from t2iscale.errors import UserError
    from t2iscale.eval.generate import SamplerSettings, check_weights, read_run_config
    from t2iscale.eval.prompt_source import SHAPES_PREFIX, resolve_prompts

    config = read_run_config(args.run)
    seeds = config.eval.seeds if args.seeds is None else args.seeds
    settings = SamplerSettings.of_run(
        config, steps=args.steps, guidance=args.guidance, ema=args.ema, weights=args.weights
    )
    check_weights(args.run, config, args.weights, settings.ema)
    world = config.data.world if config.data.kind == "shapes" else None
    prompts = args.prompts or config.eval.prompts
    if world is None and prompts.startswith(SHAPES_PREFIX):
        # Said here, in this command's own flags: the prompt source's message is written for no command.
        given = "--prompts" if args.prompts else f"the run's eval.prompts ({config.eval.prompts!r})"
        raise UserError(
            f"{given} names a shapes-world prompt set, but {args.run} trains on {config.data.kind} data, not the "
            "shapes world: give --prompts FILE (a TIFA-format prompt or question file)"
        )
    source = resolve_prompts(
        prompts,
        world=world,
        per_category=args.per_category or config.eval.per_category,
    )

    from t2iscale.eval.generate import generate_images
    from t2iscale.eval.text_to_image import load_text_to_image

    out = Path(args.out) if args.out else Path(args.run) / "eval" / f"generated-{args.weights}"
    print(f"generating with {settings.describe(config)}, seeds {seeds}", file=sys.stderr)
    manifest = generate_images(
        load_text_to_image(args.run, weights=args.weights, ema=settings.ema),
        source,
        seeds,
        out,
        steps=settings.steps,
        guidance=settings.guidance,
        batch_size=args.batch_size,
    )
    print(f"{source.description}: {len(source.prompts) * len(seeds)} images -> {manifest}")
    score_hint = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in source.score_kwargs.items())
    print(f"score them with: t2iscale eval score --manifest {manifest} {score_hint}".rstrip())
    return 0

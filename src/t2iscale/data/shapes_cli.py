"""`t2iscale data shapes`: write a shapes-world dataset as webdataset shards, or benchmark the renderer."""

from __future__ import annotations

import json
from pathlib import Path

from t2iscale.data.caption_policy import CAPTION_POLICIES


def register(subparsers):
    from t2iscale.cli import add_command

    parser = add_command(
        subparsers,
        "shapes",
        handle,
        help="write a shapes-world dataset as webdataset shards (or --bench the renderer)",
        description=(
            "Write N procedurally generated shapes-world images as webdataset shards: {key}.png, {key}.txt "
            "(alt text), {key}.json (scene, alt, synthetic_captions), plus dataset.json with the image-noun "
            "pair total. With --bench, print images/s of the training batch path at a few resolutions instead."
        ),
    )
    parser.add_argument("--out", help="output directory for the shards (required unless --bench)")
    parser.add_argument("--n", type=int, default=1000, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (same seed: nested datasets)")
    parser.add_argument("--policy", default="mix", choices=CAPTION_POLICIES, help="caption policy")
    parser.add_argument(
        "--world", default="tiny", help="world preset (tiny, default, findings) or a world config .json"
    )
    parser.add_argument("--resolution", type=int, default=32, help="image side in pixels")
    parser.add_argument("--shard-size", type=int, default=1000, help="images per shard")
    parser.add_argument(
        "--eval-prompts",
        metavar="DIR",
        help="also write the world's evaluation prompts (prompts.json) and TIFA questions (questions.json) here",
    )
    parser.add_argument("--per-category", type=int, default=50, help="evaluation prompts per category")
    parser.add_argument("--bench", action="store_true", help="print a rendering benchmark line and exit")
    return parser


def handle(args) -> int:
    from t2iscale.data.shapes.world import resolve_world

    world = resolve_world(args.world)
    if args.bench:
        from t2iscale.data.shapes.bench import benchmark_line

        print(benchmark_line(world))
        return 0
    if args.eval_prompts:
        write_eval_prompts(world, Path(args.eval_prompts), args.per_category)
    if not args.out:
        if args.eval_prompts:
            return 0
        args.command_parser.error("--out is required (the directory to write shards to), unless --bench")

    from t2iscale.data.shapes.dataset import ShapesDataset
    from t2iscale.data.shapes.shards import write_shards

    dataset = ShapesDataset(
        world, seed=args.seed, size=args.n, policy=args.policy, resolution=args.resolution
    )
    summary = write_shards(dataset, args.out, shard_size=args.shard_size)
    print(
        f"wrote {summary['images']} images in {len(summary['shards'])} shards to {args.out} "
        f"({summary['noun_pairs_total']} image-noun pairs under policy {args.policy})"
    )
    return 0


def write_eval_prompts(world, out_dir: Path, per_category: int) -> None:
    from t2iscale.data.shapes.prompts import eval_prompt_set

    prompt_set = eval_prompt_set(world, per_category=per_category)
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts = [p.to_dict() for p in prompt_set.prompts]
    (out_dir / "prompts.json").write_text(json.dumps(prompts, indent=1) + "\n", encoding="utf-8")
    (out_dir / "questions.json").write_text(
        json.dumps(prompt_set.questions(), indent=1) + "\n", encoding="utf-8"
    )
    print(
        f"wrote {len(prompts)} evaluation prompts and {len(prompt_set.questions())} questions to {out_dir} "
        f"(chance level {prompt_set.chance_level():.3f})"
    )

"""`t2iscale eval oracle-check`: the shapes oracle's accuracy on ground-truth renders and on pure noise."""

from __future__ import annotations

import argparse
import json


def register(subparsers):
    from t2iscale.cli import add_command

    parser = add_command(
        subparsers,
        "oracle-check",
        handle,
        help="accuracy of the shapes oracle VQA on ground-truth renders and on pure noise",
    )
    parser.add_argument(
        "--n", type=int, default=50, help="ground-truth images per category (noise: 6x as many)"
    )
    parser.add_argument(
        "--world", default="tiny", help="world preset (tiny, default, findings) or a world config .json"
    )
    parser.add_argument(
        "--resolutions",
        type=parse_resolutions,
        default="32,64",
        help="comma-separated image sides in pixels",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the ground-truth layouts and the noise")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def parse_resolutions(text: str) -> list[int]:
    """`--resolutions 32,64` -> [32, 64]; anything else is a usage error naming the option."""
    try:
        resolutions = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated integers, e.g. 32,64") from None
    if not resolutions:
        raise argparse.ArgumentTypeError("names no resolution")
    return resolutions


def handle(args) -> int:
    from t2iscale.eval.oracle_check import format_report, run_oracle_check

    report = run_oracle_check(args.world, n=args.n, resolutions=args.resolutions, seed=args.seed)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0

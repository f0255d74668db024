"""`t2iscale train`: one run, resumable, with evaluation along training when the config asks for it.

The loop knows only hooks; the evaluation hooks come from `t2iscale.eval`, which sits after `train` in the data
flow, so the entry point (`t2iscale.cli`) hands them in as `hooks`: `(config, progress) -> [Hook]`.
"""

from __future__ import annotations

from collections.abc import Callable

from t2iscale.cli import add_command

DESCRIPTION = """Train one backbone under the recipe in a config file (JSON or TOML).

Re-running the same command resumes from the last checkpoint; `accelerate launch` or `torchrun` run the same
command on several processes or nodes. Examples:

  t2iscale train --set run_dir=runs/a --set budget.total_steps=200 --set data.size=5000
  t2iscale train --config run.toml --set recipe.lr=1e-4 --set model.backbone=sdxl-c32-td1_2
  t2iscale train --config run.toml --dry-run        # print the resolved config and exit
"""


def register(subparsers, hooks: Callable | None = None):
    parser = add_command(
        subparsers, "train", handle, help="train one run (resumable)", description=DESCRIPTION
    )
    parser.set_defaults(make_hooks=hooks)
    parser.add_argument("--config", help="JSON or TOML config file (keys: see --dry-run output)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or config print")


def handle(args) -> int:
    from t2iscale.train.config import load_config

    config = load_config(args.config, args.set)
    if args.dry_run:
        if (
            args.make_hooks
        ):  # making the evaluation hooks checks what they will need (files, prompt set, FID sizes)
            args.make_hooks(config, False)
        print(config.to_json())
        return 0
    from t2iscale.train.loop import train

    progress = not args.quiet
    hooks = args.make_hooks(config, progress) if args.make_hooks else []
    result = train(config, hooks=hooks, progress=progress)
    print(
        f"{result.status}: step {result.step}, {result.images_seen:,} images seen, "
        f"{result.train_flops:.3e} training FLOPs -> {result.run_dir}"
    )
    return 0

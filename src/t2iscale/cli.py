"""The one console entry point, `t2iscale`, with subcommands.

Every package that offers commands has a `cli.py` with `register(subparsers)`. Those modules only
declare arguments; they import torch, diffusers and the like inside their handlers, so that
`t2iscale --help` and the torch-free commands (the zoo table, fits) start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from t2iscale import __version__
from t2iscale.errors import UserError

# Order = order in `t2iscale --help`, which follows the data flow of DESIGN.md.
COMMAND_MODULES = [
    "t2iscale.demo",
    "t2iscale.zoo.cli",
    "t2iscale.bench.cli",
    "t2iscale.data.cli",
    "t2iscale.train.cli",
    "t2iscale.eval.sample_cli",
    "t2iscale.eval.cli",
    "t2iscale.study.cli",
    "t2iscale.findings.cli",
    "t2iscale.report.cli",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default and keeps the description's line breaks."""


def add_command(subparsers, name: str, handler, help: str, description: str | None = None):
    """Add one subcommand whose `--help` shows defaults; `handler(args) -> int | None` runs it."""
    parser = subparsers.add_parser(
        name, help=help, description=description or help, formatter_class=HelpFormatter
    )
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def _evaluation_hooks(config, progress: bool) -> list:
    from t2iscale.eval.along_training import evaluation_hooks

    return evaluation_hooks(config, progress=progress)


# What a command module needs from packages after it in the data flow, handed in here, where every package is known:
# the training loop runs evaluation along training through hooks it does not import.
REGISTER_OPTIONS = {"t2iscale.train.cli": {"hooks": _evaluation_hooks}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="t2iscale",
        description="Controlled scaling studies of diffusion text-to-image models.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"t2iscale {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers, **REGISTER_OPTIONS.get(module_name, {}))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        code = args.handler(args)
    except UserError as error:
        if args.debug:
            raise
        print(f"t2iscale: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("t2iscale: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # an unexpected failure: still one line, the traceback on --debug
        if args.debug:
            raise
        print(
            f"t2iscale: error: {type(error).__name__}: {error} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

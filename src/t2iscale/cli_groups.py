"""Command groups (`t2iscale data ...`, `t2iscale eval ...`) whose subcommands live in several modules."""

from __future__ import annotations

import importlib
import sys

from t2iscale.cli import EXIT_USAGE, add_command


def show_commands(args) -> int:
    """A group named without one of its commands (`t2iscale eval`): a usage error that lists the commands."""
    args.command_parser.print_help(sys.stderr)
    return EXIT_USAGE


def register_group(subparsers, name: str, help: str, module_names: list[str]):
    """Add `t2iscale <name>` whose subcommands come from each module's `register(group_subparsers)`."""
    parser = add_command(subparsers, name, handler=show_commands, help=help)
    group = parser.add_subparsers(title=f"{name} commands", metavar="COMMAND")
    for module_name in module_names:
        importlib.import_module(module_name).register(group)
    return parser

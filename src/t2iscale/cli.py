"""The one console entry point, `t2iscale`, with subcommands.

Every package that offers commands has a `cli.py` with `register(subparsers)`. Those modules only
declare arguments; they import torch, diffusers and the like inside their handlers, so that
`t2iscale --help` and the torch-free commands (the zoo table, fits) start fast.

Exit status: 0 on success (also when a reader closes the pipe early, as `t2iscale zoo | head` does), 1 when the
command fails (a `UserError`: bad input named in one line; or an unexpected error), 2 for a usage error
(argparse's: an unknown option or a bad value, reported with the usage of the command it belongs to), 130 on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
import warnings

from t2iscale import __version__
from t2iscale.errors import UserError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Order = order in `t2iscale --help`, which follows the data flow of DESIGN.md.
COMMAND_MODULES = [
    "t2iscale.demo",
    "t2iscale.zoo.cli",
    "t2iscale.bench.cli",
    "t2iscale.data.cli",
    "t2iscale.train.cli",
    "t2iscale.eval.sample_cli",
    "t2iscale.eval.export_cli",
    "t2iscale.eval.cli",
    "t2iscale.study.cli",
    "t2iscale.findings.cli",
    "t2iscale.report.cli",
]


# A help text that already says its default: "(default: <run>/samples)", "(repeat; default 0)", "default: ...".
_STATES_DEFAULT = re.compile(r"\(default\b|;\s*default\b|\bdefault:")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends "(default: X)" to an option's help once, where it says
    something: not when the help already states its default, nor for None, empty, required or on/off flags."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        default = action.default
        if (
            "%(default)" in help
            or _STATES_DEFAULT.search(help)
            or action.required
            or default is None
            or default is argparse.SUPPRESS
            or default == []
            or (action.nargs == 0 and default is False)  # a plain flag (--json): off unless given
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
        ):
            return help
        return f"{help} (default: %(default)s)" if help else "(default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """A parser that reports an argument it does not know itself, with its own usage.

    argparse hands a subcommand's unknown arguments up to the top-level parser, whose error then shows
    `t2iscale`'s usage for a mistake in `t2iscale zoo --filtr`. Every parser of the tree is a CommandParser
    (subparsers take their parent's class), so the innermost command that saw the argument reports it.
    """

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


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
    parser = CommandParser(
        prog="t2iscale",
        description="Controlled scaling studies of diffusion text-to-image models.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"t2iscale {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars, in this command and the processes it starts (also: T2ISCALE_PROGRESS=0); "
        "bars are drawn on stderr, and only when it is a terminal",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers, **REGISTER_OPTIONS.get(module_name, {}))
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A printed warning as one line, like an error (with its source line on --debug)."""
    return f"t2iscale: warning: {message}\n"


def _closed_pipe(error: BaseException) -> bool:
    return isinstance(error, BrokenPipeError) or (isinstance(error, OSError) and error.errno == errno.EPIPE)


def _leave_quietly_after_closed_pipe() -> int:
    """The reader of stdout went away (`t2iscale zoo | head -2`): stop without a word.

    Whatever is still buffered for stdout would fail again when the interpreter flushes it at exit ("Exception
    ignored ... BrokenPipeError"), so stdout is pointed at /dev/null first (Python's documented recipe). The exit
    status is 0, as when the reader happens to close after the last line: the output was not wanted further.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in tests)
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    exit_ = None
    try:
        code = _main(argv)
    except SystemExit as raised:  # argparse: --help, --version, a usage error
        exit_, code = raised, raised.code
    except BaseException as error:
        if not _closed_pipe(error):
            raise
        return _leave_quietly_after_closed_pipe()
    try:
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BaseException as error:
        if not _closed_pipe(error):
            raise
        _leave_quietly_after_closed_pipe()
    if exit_ is not None:
        raise exit_
    return code


def _main(argv: list[str] | None) -> int:
    from t2iscale.progress import disable_progress, quiet_library_bars

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_progress:
        disable_progress()
    quiet_library_bars()
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    format_warning = warnings.formatwarning
    try:
        if not args.debug:
            warnings.formatwarning = _format_warning  # how a warning prints; recorded ones are unchanged
        code = args.handler(args)
    except UserError as error:
        if args.debug:
            raise
        print(f"t2iscale: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("t2iscale: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # an unexpected failure: still one line, the traceback on --debug
        if args.debug or _closed_pipe(error):  # main() ends quietly on a closed pipe
            raise
        print(
            f"t2iscale: error: {type(error).__name__}: {error} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    finally:
        warnings.formatwarning = format_warning
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

import argparse
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import t2iscale
from t2iscale.cli import COMMAND_MODULES, build_parser, main
from t2iscale.progress import ENV as PROGRESS_ENV
from t2iscale.progress import progress_bar, progress_enabled


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    assert "commands" in out
    assert len(COMMAND_MODULES) >= 1


def test_console_script_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "t2iscale.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("t2iscale ")


# Issue 14, item 12: the CLI's conventions.


def closed_pipe_run(*argv):
    """Run t2iscale with its stdout read by nobody: the pipe is closed before the command writes a line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "t2iscale.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()
    err = process.stderr.read()
    return process.wait(timeout=120), err


@pytest.mark.parametrize("argv", [["zoo", "--filter", "sdxl"], ["--help"]])
def test_a_closed_pipe_ends_the_command_quietly(argv):
    code, err = closed_pipe_run(*argv)
    assert (code, err) == (0, "")  # was 1 with "t2iscale: error: BrokenPipeError" (and no traceback at exit)


def all_parsers(parser=None, path=("t2iscale",)):
    parser = parser or build_parser()
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, (*path, name))


@pytest.mark.parametrize(
    "argv, usage",
    [
        (["zoo", "--filtr", "sdxl*"], "usage: t2iscale zoo"),
        (["eval", "generate", "--run", "r", "--bogus"], "usage: t2iscale eval generate"),
        (["study", "status", "d", "--bogus"], "usage: t2iscale study status"),
        (["--bogus", "zoo"], "usage: t2iscale [-h]"),
        (["eval", "generate", "--run", "r", "--seeds", "0,x"], "usage: t2iscale eval generate"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_of_the_command_they_belong_to(capsys, argv, usage):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith(usage)  # `zoo --filtr` showed t2iscale's usage


def test_runtime_errors_exit_1_in_one_line(capsys, monkeypatch):
    assert main(["zoo", "no-such-model"]) == 1  # a UserError; was 2
    err = capsys.readouterr().err
    assert err.startswith("t2iscale: error: unknown zoo name") and err.count("\n") == 1

    import t2iscale.zoo.accounting

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(t2iscale.zoo.accounting, "account", broken)
    assert main(["zoo"]) == 1
    assert (
        capsys.readouterr().err
        == "t2iscale: error: RuntimeError: boom (run with --debug for the traceback)\n"
    )


def test_a_group_without_its_command_is_a_usage_error(capsys):
    assert main(["eval"]) == 2
    assert "eval commands" in capsys.readouterr().err


def test_help_states_each_default_once_and_never_none():
    for name, parser in all_parsers():
        for action in parser._actions:
            help_text = parser._get_formatter()._expand_help(action) if action.help else ""
            assert "(default: None)" not in help_text, (name, action.dest)
            stated = re.findall(
                r"\(default\b|;\s*default\b|default:", help_text
            )  # "(default: X)", "; default X"
            assert len(stated) <= 1, (
                name,
                help_text,
            )  # "(default: <run>/samples) (default: None)" said it twice
    sample = dict(all_parsers())["t2iscale sample"].format_help()
    assert "(default: <run>/samples)" in sample and "(default: None)" not in sample


def test_no_progress_turns_every_bar_off_here_and_in_child_processes(capsys, monkeypatch):
    for name in (PROGRESS_ENV, "TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", terminal)
    assert progress_enabled()  # a terminal, and nobody turned bars off
    bar = progress_bar(range(3), desc="x")
    list(bar)
    assert "x: 100%" in terminal.getvalue()  # drawn on stderr

    assert main(["--no-progress", "zoo", "--filter", "sd2"]) == 0
    assert os.environ[PROGRESS_ENV] == "0" and not progress_enabled()
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # transformers' bars too (read at its import)
    terminal.seek(0)
    terminal.truncate()
    list(progress_bar(range(3), desc="x"))
    assert terminal.getvalue() == ""


def test_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    log = io.StringIO()  # a log file or a pipe
    monkeypatch.setattr(sys, "stderr", log)
    list(progress_bar(range(3), desc="x"))
    assert log.getvalue() == ""


def test_every_progress_bar_goes_through_progress_bar():
    """One rule for every bar (t2iscale.progress): no module draws tqdm itself."""
    source = Path(t2iscale.__file__).parent
    direct = [
        str(path.relative_to(source))
        for path in sorted(source.rglob("*.py"))
        if path.name != "progress.py" and re.search(r"^\s*from tqdm|^\s*import tqdm", path.read_text(), re.M)
    ]
    assert direct == []

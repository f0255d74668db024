import subprocess
import sys

from t2iscale.cli import COMMAND_MODULES, main


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

"""A config is validated completely at its edge, without torch, before anything touches the disk (issue 14, item 6):
a typo can no longer write config.json and lock the run folder against the corrected command."""

import subprocess
import sys

import pytest

from t2iscale.cli import main
from t2iscale.errors import UserError
from t2iscale.train.config import EVAL_METRICS, OBJECTIVE_NAMES, validate_config

from .helpers import cli_env, overrides, tiny_config


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"model": {"backbone": "sdxl-c0"}}, r"model\.backbone: unknown zoo name 'sdxl-c0'"),
        (
            {"model": {"backbone": "pixart-h40-d2"}},
            r"model\.backbone: .*hidden width 40 must be a multiple of 16",
        ),
        (  # an odd input grid for a patch-2 transformer: impossible in this run's setting only
            {"model": {"backbone": "pixart-h32-d2"}, "data": {"resolution": 17}},
            r"model\.backbone: .*even input grid, got 17",
        ),
        (
            {"recipe": {"objective": "foo"}},
            r"recipe\.objective: Input should be 'ddpm-eps', 'ddpm-v' or 'flow'",
        ),
        ({"recipe": {"micro_batch": 3}}, r"recipe\.micro_batch: .*does not divide recipe\.global_batch 8"),
        ({"text": {"heads": 3}}, r"text\.heads: text\.dim 16 must be divisible by text\.heads 3"),
        ({"data": {"world": "tinny"}}, r"data\.world: unknown shapes world 'tinny'"),
        ({"eval": {"metrics": ["tifo"]}}, r"eval\.metrics\.0: Input should be 'tifa'"),
        ({"eval": {"prompts": "shapes-v9"}}, r"eval\.prompts: unknown built-in prompt set 'shapes-v9'"),
        (
            {"data": {"kind": "prepared", "path": "nowhere"}, "eval": {"every_steps": 5}},
            r"eval\.prompts: 'shapes-v1' is the shapes world's prompt set",
        ),
    ],
)
def test_what_a_run_could_never_build_is_refused_naming_the_key(sections, message):
    with pytest.raises(UserError, match=message):
        validate_config(tiny_config("run", **sections))


def test_validation_is_torch_free_and_its_closed_sets_are_the_registries():
    script = (
        "import sys\n"
        "from t2iscale.errors import UserError\n"
        "from t2iscale.train.config import validate_config\n"
        "base = {'run_dir': 'r', 'budget': {'total_steps': 1}, 'data': {'size': 8, 'resolution': 16}}\n"
        "for section, values in [('model', {'backbone': 'sdxl-c0'}), ('recipe', {'objective': 'foo'}),\n"
        "                        ('model', {'backbone': 'pixart-h40-d2'})]:\n"
        "    try:\n"
        "        validate_config({**base, section: values})\n"
        "    except UserError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('accepted ' + repr(values))\n"
        "validate_config(base)\n"
        "assert 'torch' not in sys.modules, 'validation imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env())
    assert result.returncode == 0, result.stderr + result.stdout

    from t2iscale.diffusion.objectives import OBJECTIVES
    from t2iscale.eval.score import METRICS

    assert tuple(OBJECTIVES) == OBJECTIVE_NAMES
    assert tuple(METRICS) == EVAL_METRICS


@pytest.mark.parametrize("typo", ["model.backbone=sdxl-c0", "recipe.objective=foo"])
def test_a_typo_fails_before_the_run_folder_is_touched_and_the_corrected_command_trains(
    tmp_path, capsys, typo
):
    run = tmp_path / "run"
    arguments = ["train", "--quiet", *overrides(tiny_config(run, budget={"total_steps": 1}))]
    key = typo.split("=")[0]
    for dry_run in (["--dry-run"], []):
        assert main([*arguments, f"--set={typo}", *dry_run]) != 0
        assert key in capsys.readouterr().err
        assert not run.exists()  # nothing written: not even config.json
    assert main(arguments) == 0
    assert (run / "final").is_dir()


def test_dry_run_checks_what_the_evaluation_will_need(tmp_path, capsys):
    """`train --dry-run` makes the evaluation hooks, which check their files before anything trains."""
    run = tmp_path / "run"
    config = tiny_config(run, budget={"total_steps": 4}, eval={"every_steps": 2, "metrics": ["fid"]})
    missing = tmp_path / "nope.pt"
    arguments = ["train", "--dry-run", *overrides(config), f"--set=eval.inception={missing}"]
    assert main(arguments) == 1
    assert f"eval.inception: '{missing}' is not a file" in capsys.readouterr().err
    assert not run.exists()

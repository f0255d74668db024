"""`t2iscale sample` and `t2iscale eval generate` sample a run the way its evaluation did (issue 14, item 13)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from t2iscale.cli import main
from t2iscale.eval.text_to_image import TextToImage
from t2iscale.study.single_run import run_training
from t2iscale.train.config import validate_config

STEPS, GUIDANCE = 2, 3.0  # the run's evaluation settings; the paper's (and the old defaults) are 50 and 7.5
TINY = {
    "model": {"backbone": "sdxl-c8-td1_1"},
    "data": {"size": 16, "resolution": 16, "world": "tiny"},
    "text": {"dim": 16, "max_length": 24, "layers": 1, "heads": 2},
    "recipe": {"global_batch": 4, "warmup_steps": 1, "lr": 1e-3, "ema_decay": None},
    "budget": {"total_steps": 2, "log_every_steps": 1, "checkpoint_every_steps": 2},
    "eval": {
        "every_steps": 2,
        "per_category": 1,
        "seeds": [0, 1],
        "sampler_steps": STEPS,
        "guidance": GUIDANCE,
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny shapes run, trained without EMA, evaluated at its last step."""
    run_dir = tmp_path_factory.mktemp("sample") / "run"
    run_training(validate_config({**TINY, "run_dir": str(run_dir)}), progress=False)
    return run_dir


@pytest.fixture
def generate_calls(monkeypatch):
    """The settings every `TextToImage.generate` call samples with."""
    calls = []
    original = TextToImage.generate

    def recording(self, captions, seeds, steps=50, guidance=7.5, **options):
        calls.append({"steps": steps, "guidance": guidance})
        return original(self, captions, seeds, steps=steps, guidance=guidance, **options)

    monkeypatch.setattr(TextToImage, "generate", recording)
    return calls


def evaluated_image(run):
    """One image of the run's own evaluation at its last step, with its caption and seed."""
    step_dir = run / "eval" / "step_000002"
    entry = json.loads((step_dir / "manifest.jsonl").read_text().splitlines()[0])
    return entry["caption"], entry["seed"], np.asarray(Image.open(step_dir / entry["path"]))


def test_sample_uses_the_runs_evaluation_settings_and_gives_the_reports_image(
    run, tmp_path, generate_calls, capsys
):
    caption, seed, expected = evaluated_image(run)
    out = tmp_path / "samples"
    code = main(["sample", "--run", str(run), "--prompt", caption, "--seed", str(seed), "--out", str(out)])
    assert code == 0
    assert generate_calls == [{"steps": STEPS, "guidance": GUIDANCE}]  # was 50 steps, CFG 7.5
    assert "2 steps, CFG 3, non-EMA weights: the run's evaluation settings" in capsys.readouterr().err
    sampled = np.asarray(Image.open(out / f"000_s{seed}.png"))
    # The same weights, caption, seed and settings as the evaluation (other batch sizes round apart by a level).
    assert np.abs(sampled.astype(int) - expected.astype(int)).max() <= 1

    # A flag still overrides the run's setting, and says that the images then differ from the evaluation's.
    code = main(["sample", "--run", str(run), "--prompt", caption, "--steps", "1", "--out", str(out)])
    assert code == 0 and generate_calls[-1] == {"steps": 1, "guidance": GUIDANCE}
    assert "the run's evaluation used 2 steps, CFG 3" in capsys.readouterr().err


def test_eval_generate_uses_the_runs_evaluation_settings_and_seeds(run, tmp_path, generate_calls):
    out = tmp_path / "generated"
    assert main(["eval", "generate", "--run", str(run), "--out", str(out)]) == 0
    assert generate_calls == [{"steps": STEPS, "guidance": GUIDANCE}]
    evaluated = (run / "eval" / "step_000002" / "manifest.jsonl").read_text()
    assert (out / "manifest.jsonl").read_text() == evaluated  # the same prompts, seeds and file names


@pytest.mark.parametrize("command", [["sample", "--prompt", "a red circle"], ["eval", "generate"]])
def test_ema_on_a_run_without_ema_says_the_run_has_no_ema_weights(run, capsys, command):
    code = main([*command, "--run", str(run), "--ema"])
    err = capsys.readouterr().err
    assert code == 1
    assert "trained without EMA" in err and "has no EMA weights" in err
    assert "has not finished" not in err


def test_words_outside_the_vocabulary_are_named_in_a_warning(run, tmp_path):
    with pytest.warns(UserWarning, match=r"purple, hexagon, next, zebra \(not in the learned vocabulary\)"):
        main(["sample", "--run", str(run), "--prompt", "a purple hexagon next to a zebra", "--steps", "1",
              "--out", str(tmp_path)])  # fmt: skip


def test_known_words_give_no_warning(run, tmp_path, recwarn):
    main(["sample", "--run", str(run), "--prompt", "a red circle", "--steps", "1", "--out", str(tmp_path)])
    assert not [w for w in recwarn if "cannot see" in str(w.message)]


@pytest.mark.parametrize("command", [["sample", "--prompt", "a red circle"], ["eval", "generate"]])
def test_a_missing_run_folder_fails_before_torch_is_imported(tmp_path, command):
    script = (
        "import sys\n"
        "from t2iscale.cli import main\n"
        f"code = main({[*command, '--run', str(tmp_path / 'nowhere')]!r})\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["1", "False"]  # a user error, found without loading torch
    assert "is not a run folder" in result.stderr

"""Evaluation along training logs each metric's N and, for per-image metrics, the per-image scores."""

import json

import pytest
from test_along_training import TINY

from t2iscale.eval.samples import SampleScores
from t2iscale.study.single_run import run_training
from t2iscale.train.config import validate_config
from t2iscale.train.jsonl import read_jsonl

SEEDS = [3, 5, 7, 11, 13, 17]  # 36 images: FID needs at least as many as its (31-d) features
PROMPTS = 6  # one per GenEval category (per_category 1)


def test_eval_log_lines_carry_n_images_and_the_samples_of_per_image_metrics(tmp_path):
    raw = {**TINY, "run_dir": str(tmp_path / "run"), "budget": {**TINY["budget"], "total_steps": 2}}
    raw["eval"] = {**TINY["eval"], "seeds": SEEDS, "metrics": ["tifa", "oracle_fid"]}
    run_training(validate_config(raw), progress=False)
    tifa, fid = read_jsonl(tmp_path / "run" / "eval" / "eval.jsonl")
    assert (tifa["step"], tifa["metric"], fid["step"], fid["metric"]) == (2, "tifa", 2, "oracle_fid")

    assert tifa["n_images"] == fid["n_images"] == PROMPTS * len(SEEDS)
    assert "samples" not in fid  # a set statistic: its N, no per-image scores

    # The logged samples are the scorer's, and they give the logged value and categories back.
    written = json.loads((tmp_path / "run" / "eval" / "step_000002" / "eval" / "tifa.json").read_text())
    assert tifa["samples"] == written["samples"]
    samples = SampleScores.from_dict(tifa["samples"])
    assert len(samples) == tifa["n_images"] and set(samples.seeds) == set(SEEDS)
    # Every prompt has the same seeds, so the mean over images is the mean over prompts.
    assert samples.mean == pytest.approx(tifa["value"], abs=1e-12)
    for category, value in tifa["categories"].items():
        assert samples.only_category(category).mean == pytest.approx(value, abs=1e-12)

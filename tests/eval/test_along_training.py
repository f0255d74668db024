"""Evaluation along training: every N steps and at the end, once per step, also across a kill and resume."""

import json

import pytest
import torch

from t2iscale.errors import UserError
from t2iscale.study.single_run import run_training
from t2iscale.train.config import validate_config
from t2iscale.train.jsonl import read_jsonl

TINY = {
    "model": {"backbone": "sdxl-c8-td1_1"},
    "data": {"size": 32, "resolution": 16, "world": "tiny"},
    "text": {"dim": 16, "max_length": 12, "layers": 1, "heads": 2},
    "recipe": {"global_batch": 4, "warmup_steps": 1, "lr": 1e-3, "ema_decay": None},
    "budget": {"total_steps": 4, "log_every_steps": 1, "checkpoint_every_steps": 2},
    "eval": {"every_steps": 2, "per_category": 1, "sampler_steps": 2, "guidance": 3.0},
}


def test_evaluates_every_n_steps_once_and_again_after_a_kill_before_the_evaluation(tmp_path):
    config = validate_config({**TINY, "run_dir": str(tmp_path / "run")})
    run_training(config, progress=False)
    log = tmp_path / "run" / "eval" / "eval.jsonl"
    records = read_jsonl(log)
    assert [(r["step"], r["metric"]) for r in records] == [(2, "tifa"), (4, "tifa")]
    final = records[-1]
    assert 0.0 <= final["value"] <= 1.0 and 0.3 < final["chance_level"] < 0.6
    assert set(final["categories"]) == {
        "single_object", "two_object", "counting", "colors", "position", "color_attr"
    }  # fmt: skip
    assert final["images_seen"] == 16 and final["train_flops"] > 0
    step_dir = tmp_path / "run" / "eval" / "step_000004"
    assert (step_dir / "manifest.jsonl").is_file() and (step_dir / "eval" / "tifa.json").is_file()

    # Re-running the finished run evaluates nothing again.
    run_training(config, progress=False)
    assert len(read_jsonl(log)) == 2

    # A kill after the last checkpoint but before its evaluation: the resumed run evaluates that step.
    log.write_text(json.dumps(records[0]) + "\n")
    (tmp_path / "run" / "status.json").write_text(json.dumps({"status": "running", "step": 4, "message": ""}))
    run_training(config, progress=False)
    assert [r["step"] for r in read_jsonl(log)] == [2, 4]
    assert read_jsonl(log)[-1]["value"] == final["value"]  # same weights, prompts and seeds: same score


def test_evaluation_on_ema_weights_swaps_them_in_and_back(tmp_path):
    from safetensors.torch import load_file

    def final(run):
        return load_file(tmp_path / run / "final" / "backbone" / "diffusion_pytorch_model.safetensors")

    for run, use_ema in (("plain", False), ("ema", True)):
        raw = {**TINY, "run_dir": str(tmp_path / run), "recipe": {**TINY["recipe"], "ema_decay": 0.5}}
        raw["eval"] = {**TINY["eval"], "use_ema": use_ema}
        run_training(validate_config(raw), progress=False)
    plain, ema = final("plain"), final("ema")
    # Training continued on the trained weights, not on the EMA copy used for evaluation.
    assert all(torch.equal(plain[name], ema[name]) for name in plain)
    assert len(read_jsonl(tmp_path / "ema" / "eval" / "eval.jsonl")) == 2


def test_ema_evaluation_without_ema_weights_is_a_config_error(tmp_path):
    raw = {**TINY, "run_dir": str(tmp_path / "run"), "eval": {**TINY["eval"], "use_ema": True}}
    with pytest.raises(UserError, match="eval.use_ema needs EMA weights"):
        validate_config(raw)

"""The study's plan and the training loop account a run's compute from one setting (`run_setting`): the FLOPs the
study records (the x-axis of every compute fit) are the FLOPs the loop logs."""

import json

import pytest
from study_fixtures import tiny_spec

from t2iscale.study.registry import StudyRegistry
from t2iscale.study.runner import run_study
from t2iscale.train.config import TrainConfig, run_setting
from t2iscale.zoo.setting import Setting


def test_the_plans_recorded_flops_are_what_the_loop_logs(tmp_path):
    spec = tiny_spec(backbones=["sdxl-c8-td1_1", "sd2-c8"], eval={"every_steps": None})
    spec["base"]["data"]["resolution"] = 24  # not the default, so a setting derived twice would show
    report = run_study(spec, tmp_path / "study", progress=False)
    assert [outcome.outcome for outcome in report.outcomes] == ["finished", "finished"]
    with StudyRegistry(tmp_path / "study") as registry:
        runs = registry.runs()
        for row in runs:
            logged = [
                json.loads(line)
                for line in (registry.run_dir(row) / "metrics.jsonl").read_text().splitlines()
            ]
            for record in logged:
                planned = record["images_seen"] * row["train_gflops_per_image"] * 1e9
                assert record["train_flops"] == pytest.approx(planned, rel=1e-12), (
                    row["run_id"],
                    record["step"],
                )


def test_run_setting_is_the_shapes_worlds_pixels_and_the_learned_encoders_width():
    config = TrainConfig.model_validate(
        {
            "run_dir": "x",
            "data": {"resolution": 24, "size": 10},
            "text": {"dim": 48, "max_length": 20},
            "budget": {"total_steps": 1},
        }
    )
    assert run_setting(config) == Setting(
        resolution=24, latent_factor=1, in_channels=3, text_dim=48, text_len=20
    )

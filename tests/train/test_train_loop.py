"""The training loop: runs, logs, saves diffusers weights, resumes exactly, trains identically on 2 processes."""

import json
import signal
import stat
import subprocess
import time

import pytest
import torch

from t2iscale.errors import UserError
from t2iscale.file_modes import umask
from t2iscale.train.config import validate_config
from t2iscale.train.jsonl import read_jsonl
from t2iscale.train.loop import TrainingDiverged, train
from t2iscale.zoo.accounting import account
from t2iscale.zoo.setting import Setting

from .helpers import cli_env, final_weights, run_cli, tiny_config, train_command


def test_tiny_run_logs_every_field_and_saves_diffusers_weights(tmp_path):
    config = validate_config(tiny_config(tmp_path / "run"))
    result = train(config, progress=False)
    assert (result.status, result.step, result.images_seen) == ("finished", 6, 48)

    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [record["step"] for record in records] == [1, 2, 3, 4, 5, 6]
    for key in ("images_seen", "loss", "lr", "images_per_s", "mfu", "train_flops", "peak_memory_gib"):
        assert key in records[-1]
    assert all(0.0 <= record["data_wait_fraction"] <= 1.0 for record in records)
    per_image = account("sdxl-c8-td1_1", Setting(16, 1, 3, 16, 12)).train_gflops_per_image
    assert records[-1]["train_flops"] == pytest.approx(48 * per_image * 1e9)  # 3 x forward FLOPs per image
    assert records[0]["lr"] == pytest.approx(0.5e-3) and records[-1]["lr"] == pytest.approx(1e-3)  # warm-up
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "finished"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["lr"] == 1e-3

    # The final backbone is a plain diffusers folder.
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tmp_path / "run" / "final" / "backbone")
    assert unet.config.block_out_channels[0] == 8
    assert (tmp_path / "run" / "final" / "ema" / "backbone").is_dir()

    # Weights and checkpoints are as readable as any file the user writes (safetensors 0.8 alone gives 0600).
    written = [
        p
        for folder in ("final", "checkpoints")
        for p in (tmp_path / "run" / folder).rglob("*")
        if p.is_file()
    ]
    assert any(p.suffix == ".safetensors" for p in written)
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o666 & ~umask()}

    # Running the same finished run again does no work and logs nothing twice.
    again = train(config, progress=False)
    assert again.resumed_from == 6
    assert len(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 6


def test_same_folder_with_a_different_recipe_is_refused(tmp_path):
    train(validate_config(tiny_config(tmp_path / "run", budget={"total_steps": 2})), progress=False)
    other = validate_config(tiny_config(tmp_path / "run", recipe={"lr": 5e-4}))
    with pytest.raises(UserError, match=r"differs in recipe\.lr"):
        train(other, progress=False)


def test_gradient_accumulation_trains_the_same_model_as_the_full_batch(tmp_path):
    full = tiny_config(tmp_path / "full", budget={"total_steps": 3})
    accumulated = tiny_config(tmp_path / "micro", budget={"total_steps": 3}, recipe={"micro_batch": 2})
    train(validate_config(full), progress=False)
    train(validate_config(accumulated), progress=False)
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "micro")
    # Equal up to float32 summation order (~1e-6 on weights of order 0.1).
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_loss_falls_on_the_shapes_world(tmp_path):
    config = tiny_config(
        tmp_path / "run", budget={"total_steps": 40, "checkpoint_every_steps": 40}, recipe={"lr": 3e-3}
    )
    train(validate_config(config), progress=False)
    losses = [record["loss"] for record in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:4]) / 4


def test_non_finite_loss_stops_the_run_as_diverged_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(
        tmp_path / "run",
        recipe={"lr": 1e30, "warmup_steps": 0, "grad_clip": None},
        budget={"total_steps": 30},
    )
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(validate_config(config), progress=False)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "diverged" and "non-finite" in status["message"]
    assert not (tmp_path / "run" / "final").exists()


def _wait_for(path, process, seconds=120):
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else "training exited early"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_killed_run_resumes_and_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    budget = {"total_steps": 8, "checkpoint_every_steps": 2}
    uninterrupted = tiny_config(tmp_path / "clean", budget=budget)
    assert run_cli(train_command(uninterrupted)).returncode == 0

    interrupted = tiny_config(tmp_path / "killed", budget=budget)
    process = subprocess.Popen(train_command(interrupted), env=cli_env(), stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "killed" / "checkpoints" / "step_000004" / "trainer_state.json", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "final").exists()

    resumed = run_cli(train_command(interrupted))
    assert resumed.returncode == 0, resumed.stderr
    clean, killed = final_weights(tmp_path / "clean"), final_weights(tmp_path / "killed")
    assert clean.keys() == killed.keys()
    for name in clean:
        assert torch.equal(clean[name], killed[name]), name
    steps = [record["step"] for record in read_jsonl(tmp_path / "killed" / "metrics.jsonl")]
    assert steps == list(range(1, 9))  # every step logged exactly once


def test_two_processes_train_the_same_model_as_one_with_the_same_global_batch(tmp_path):
    one = tiny_config(tmp_path / "one", budget={"total_steps": 3})
    two = tiny_config(tmp_path / "two", budget={"total_steps": 3})
    assert run_cli(train_command(one)).returncode == 0
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "t2iscale.cli"]
    command = train_command(two)
    result = run_cli([command[0], *launch, *command[3:]])
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_jsonl(tmp_path / "two" / "metrics.jsonl")[-1]["processes"] == 2
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    # Equal up to the order of the gradient all-reduce (float32 rounding, ~1e-6).
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    status = json.loads((tmp_path / "two" / "status.json").read_text())
    assert status["status"] == "finished"

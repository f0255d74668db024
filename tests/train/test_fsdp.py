"""FSDP (recipe.parallel = "fsdp") on 2 CPU processes over gloo: the same model as DDP, sharded checkpoints, a
killed run that resumes bit-identically, whole final and EMA weights; the per-process memory it saves."""

import os
import signal
import subprocess
import time

import pytest
import torch

from t2iscale.bench.memory import measured_state_bytes, state_memory, zoo_state_memory
from t2iscale.train.jsonl import read_jsonl
from t2iscale.zoo.accounting import account

from .helpers import cli_env, run_cli, tiny_config, train_command

BUDGET = {"total_steps": 4, "checkpoint_every_steps": 2}
# Evaluation along training at the end, from the EMA weights: under FSDP the hook samples gathered weights.
EVAL = {"every_steps": 4, "per_category": 1, "sampler_steps": 2, "use_ema": True}
FINAL_FILES = (
    "backbone/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
    "ema/backbone/diffusion_pytorch_model.safetensors",
    "ema/text_encoder/model.safetensors",
)


def two_processes(config: dict) -> list[str]:
    command = train_command(config)
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "t2iscale.cli"]
    return [command[0], *launch, *command[3:]]


def final_and_ema(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {
        f"{part}:{name}": tensor
        for part in FINAL_FILES
        for name, tensor in load_file(run_dir / "final" / part).items()
    }


def run_config(run_dir, parallel: str) -> dict:
    return tiny_config(run_dir, budget=BUDGET, recipe={"parallel": parallel}, eval=EVAL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 4-step run trained by DDP and by FSDP, each on 2 processes."""
    root = tmp_path_factory.mktemp("parallel")
    for mode in ("ddp", "fsdp"):
        result = run_cli(two_processes(run_config(root / mode, mode)))
        assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_fsdp_trains_the_model_ddp_trains_and_saves_whole_weights(runs):
    ddp, fsdp = final_and_ema(runs / "ddp"), final_and_ema(runs / "fsdp")
    assert ddp.keys() == fsdp.keys()
    # Equal up to the order of the gradient reductions (float32 rounding): the largest difference measured after 4
    # steps is about 1e-6 on weights of order 1.
    for name in ddp:
        assert ddp[name].shape == fsdp[name].shape, name  # gathered whole, not a shard
        torch.testing.assert_close(fsdp[name], ddp[name], rtol=1e-4, atol=1e-5, msg=name)
    assert read_jsonl(runs / "fsdp" / "metrics.jsonl")[-1]["processes"] == 2


def test_evaluation_along_fsdp_training_samples_the_gathered_ema_weights(runs):
    import numpy as np
    from PIL import Image

    images = sorted((runs / "ddp" / "eval" / "step_000004" / "images").glob("*.png"))
    assert len(images) == 6  # one prompt per category, one seed
    for path in images:
        ddp = np.asarray(Image.open(path), dtype=np.int16)
        fsdp = np.asarray(
            Image.open(runs / "fsdp" / "eval" / "step_000004" / "images" / path.name), dtype=np.int16
        )
        assert np.abs(ddp - fsdp).max() <= 1, path.name  # weights equal up to float rounding
    (ddp_record,) = read_jsonl(runs / "ddp" / "eval" / "eval.jsonl")
    (fsdp_record,) = read_jsonl(runs / "fsdp" / "eval" / "eval.jsonl")
    assert fsdp_record["step"] == 4 and fsdp_record["n_images"] == ddp_record["n_images"] == 6


def elements_per_file(folder) -> dict[str, int]:
    """How many tensor elements each file of a torch.distributed.checkpoint folder holds (from its metadata)."""
    import math

    import torch.distributed.checkpoint as dcp

    metadata = dcp.FileSystemReader(folder).read_metadata()
    counts = {}
    for index, storage in metadata.storage_data.items():
        tensor = metadata.state_dict_metadata[index.fqn]
        if hasattr(tensor, "chunks"):
            chunk = next(chunk for chunk in tensor.chunks if chunk.offsets == index.offset)
            counts[storage.relative_path] = counts.get(storage.relative_path, 0) + math.prod(chunk.sizes)
    return counts


def test_fsdp_checkpoints_are_sharded_one_file_per_process(runs):
    sharded = runs / "fsdp" / "checkpoints" / "step_000004"
    assert not (sharded / "model.safetensors").exists() and not (sharded / "optimizer.bin").exists()
    params = sum(
        tensor.numel() for name, tensor in final_and_ema(runs / "ddp").items() if name.startswith(("b", "t"))
    )
    # Each process wrote its own half of the weights, of the EMA and of AdamW's two moments (and the step counts).
    for folder, elements in (
        ("pytorch_model_fsdp_0", params),
        ("ema_sharded", params),
        ("optimizer_0", 2 * params),
    ):
        counts = elements_per_file(sharded / folder)
        assert sorted(counts) == ["__0_0.distcp", "__1_0.distcp"], folder
        assert elements <= sum(counts.values()) <= elements * 1.01, folder
        for count in counts.values():
            assert count == pytest.approx(elements / 2, rel=0.05), folder


def _wait_for(path, process, seconds=240):
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else "training exited early"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_killed_fsdp_run_resumes_bit_identical_to_the_uninterrupted_one(runs, tmp_path):
    config = run_config(tmp_path / "killed", "fsdp")
    process = subprocess.Popen(
        two_processes(config), env=cli_env(), stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _wait_for(tmp_path / "killed" / "checkpoints" / "step_000002" / "trainer_state.json", process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and both training processes
        process.wait()
    assert not (tmp_path / "killed" / "final").exists()

    resumed = run_cli(two_processes(config))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    clean, killed = final_and_ema(runs / "fsdp"), final_and_ema(tmp_path / "killed")
    assert clean.keys() == killed.keys()
    for name in clean:
        assert torch.equal(clean[name], killed[name]), name
    steps = [record["step"] for record in read_jsonl(tmp_path / "killed" / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4]  # every step logged exactly once


def test_the_analytic_state_matches_the_tensors_a_run_holds(tmp_path):
    """One process (DDP's layout): weights, AdamW moments and EMA measured from the tensors = 4 + 8 + 4 bytes per
    parameter, as the analytic table says; FSDP divides each by the number of processes."""
    from t2iscale.train.components import build_components
    from t2iscale.train.config import validate_config
    from t2iscale.train.distributed import make_accelerator
    from t2iscale.train.loop import prepare_optimization, train_step
    from t2iscale.train.sources import StepInputs

    config = validate_config(tiny_config(tmp_path / "run", budget={"total_steps": 1}))
    accelerator = make_accelerator(config.recipe)
    components = build_components(config, accelerator.device)
    optimization = prepare_optimization(components.model, config.recipe, accelerator, 8, 1, 1)
    batch = components.source.next_batch(8, 0, 1)
    inputs = StepInputs.draw(1, batch, 8, components.objective, 0, 0.1, source_state={}, data_counters={})
    train_step(optimization, inputs, accelerator)

    params = sum(p.numel() for p in components.model.parameters() if p.requires_grad)
    measured = measured_state_bytes(components.model, optimization.optimizer, optimization.ema)
    analytic = state_memory("tiny", params, "ddp", 1)
    assert measured == {
        "weights": analytic.weights,
        "gradients": analytic.gradients,
        "optimizer": analytic.optimizer,
        "ema": analytic.ema,
    }
    sharded = state_memory("tiny", params, "fsdp", 8)
    assert sharded.weights + sharded.gradients + sharded.optimizer + sharded.ema == pytest.approx(
        (analytic.total) / 8
    )


def test_the_paper_largest_unet_needs_fsdp_on_80_gb():
    """sdxl-c384-td4_12: 4.07B parameters (the zoo's accounting); DDP's training state alone exceeds an 80 GB GPU,
    FSDP over 8 GPUs holds an eighth of it plus the gathered blocks."""
    ddp, fsdp = zoo_state_memory(["sdxl-c384-td4_12"], [8])
    assert ddp.params == account("sdxl-c384-td4_12").params == 4_072_645_636
    assert ddp.total / 1e9 == pytest.approx(81.45, abs=0.01) and ddp.total > 80e9
    assert fsdp.weights == ddp.weights / 8 and fsdp.optimizer == ddp.optimizer / 8
    assert 0 < fsdp.gathered < 0.1 * ddp.total and fsdp.total < 12e9

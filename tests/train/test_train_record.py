"""What a run folder records is what was trained (issue 14, items 2-5): every piece of state on the weights'
device after a resume, the lr each step trains at and logs, the last good checkpoint after a divergence, a record
that cannot drift from what was done, and a truthful status.json after every kind of exit."""

import errno
import json
import math
import pathlib

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

from t2iscale.errors import UserError
from t2iscale.train import checkpoint, loop
from t2iscale.train.components import build_components
from t2iscale.train.config import validate_config
from t2iscale.train.distributed import make_accelerator
from t2iscale.train.jsonl import read_jsonl
from t2iscale.train.loop import (
    BLOWUP_FACTOR,
    DivergenceTest,
    Hook,
    TrainingDiverged,
    lr_factor,
    prepare_optimization,
    resume_training_state,
    train,
    train_step,
)

from .helpers import final_weights, tiny_config


def _status(run_dir) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def _largest_weight(folder) -> float:
    weights = load_file(folder / "model.safetensors")
    return max(tensor.abs().max().item() for tensor in weights.values())


# --- item 2: after a resume, every piece of training state is on the weights' device ----------------------------


def test_a_resume_puts_the_ema_and_the_optimizer_state_on_the_device_of_the_weights(tmp_path):
    """accelerate reloads registered objects (the EMA) through torch.load(map_location="cpu"): on a GPU the EMA's
    shadow weights came back on the CPU, next to weights on the GPU, and the first EMA update failed. The
    stand-in: after the real load (on the CPU) the model moves to the meta device, as the weights of a CUDA run
    live on another device than the state accelerate loaded."""
    config = validate_config(tiny_config(tmp_path / "run"))
    recipe = config.recipe

    def optimization_for(accelerator):
        torch.manual_seed(config.seed)
        components = build_components(config, accelerator.device)
        return components, prepare_optimization(components.model, recipe, accelerator, 8, 1, 6)

    accelerator = make_accelerator(recipe)
    components, optimization = optimization_for(accelerator)
    make_inputs = loop._step_inputs_maker(components, config, 0, 1)
    for step in range(2):
        train_step(optimization, make_inputs(step), accelerator)
    state = {"step": 2, "images_seen": 16, "train_flops": 0.0, "data_positions": [{}]}
    folder = checkpoint.save_checkpoint(accelerator, tmp_path / "checkpoints", 2, state, keep=2)

    accelerator = make_accelerator(recipe)
    components, optimization = optimization_for(accelerator)
    load_on_the_cpu = accelerator.load_state

    def load_state_while_the_weights_live_elsewhere(path):
        load_on_the_cpu(path)
        # The same parameter objects (the optimizer's and the EMA's references) move; their data does not matter.
        torch.__future__.set_swap_module_params_on_conversion(True)
        try:
            components.model.to("meta")
        finally:
            torch.__future__.set_swap_module_params_on_conversion(False)

    accelerator.load_state = load_state_while_the_weights_live_elsewhere
    assert resume_training_state(accelerator, folder, optimization)["step"] == 2

    weights = {p.device for p in optimization.parameters}
    assert weights == {torch.device("meta")}
    assert {p.device for p in optimization.ema.shadow_params} == weights
    optimizer_state = [
        value
        for per_parameter in optimization.optimizer.optimizer.state.values()
        for value in per_parameter.values()
        if torch.is_tensor(value)
    ]
    assert optimizer_state and {value.device for value in optimizer_state} == weights  # fused AdamW: step too
    assert optimization.lr_schedule.last_epoch == 2
    optimization.ema.step(optimization.parameters)  # the first EMA update after the resume


def test_a_resumed_run_keeps_its_ema_beside_the_weights_and_ends_with_the_ema_of_an_uninterrupted_run(
    tmp_path,
):
    devices = []

    def record_devices(context):
        trained = [p for p in context.components.model.parameters() if p.requires_grad]
        devices.append(({p.device for p in context.ema.shadow_params}, {p.device for p in trained}))

    hooks = [Hook(every_steps=1, callback=record_devices)]
    train(validate_config(tiny_config(tmp_path / "clean")), progress=False)
    train(validate_config(tiny_config(tmp_path / "resumed", budget={"total_steps": 4})), progress=False)
    train(validate_config(tiny_config(tmp_path / "resumed")), hooks=hooks, progress=False)
    assert devices and all(ema == weights for ema, weights in devices)
    for name in ("backbone/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        clean = load_file(tmp_path / "clean" / "final" / "ema" / name)
        resumed = load_file(tmp_path / "resumed" / "final" / "ema" / name)
        assert all(torch.equal(clean[key], resumed[key]) for key in clean), name


# --- item 3: warm-up ----------------------------------------------------------------------------------------


def test_warm_up_trains_step_s_at_s_over_warmup_steps_and_logs_the_lr_each_step_used(tmp_path):
    used = []

    def record_lr(optimizer, args, kwargs):
        used.append(optimizer.param_groups[0]["lr"])

    handle = register_optimizer_step_pre_hook(record_lr)
    try:  # lr 1e-3, warmup_steps 2 (the tiny config)
        train(validate_config(tiny_config(tmp_path / "run", budget={"total_steps": 3})), progress=False)
    finally:
        handle.remove()
    assert used == pytest.approx([5e-4, 1e-3, 1e-3])  # was [0, 5e-4, 1e-3]: step 1 trained at lr 0
    logged = [record["lr"] for record in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert logged == used


def test_the_cosine_schedule_peaks_where_warm_up_ends_and_reaches_zero_one_step_after_the_budget():
    recipe = validate_config(tiny_config("r", recipe={"warmup_steps": 2, "lr_schedule": "cosine"})).recipe
    factors = [lr_factor(step, recipe, total_steps=6) for step in range(1, 8)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2:6] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 5)) for k in (1, 2, 3, 4)])
    assert factors[5] > 0 and factors[6] == pytest.approx(0.0)  # the last step (6) still trains
    no_warmup = recipe.model_copy(update={"warmup_steps": 0})
    assert lr_factor(1, no_warmup, 6) == 1.0
    constant = recipe.model_copy(update={"lr_schedule": "constant", "warmup_steps": 4})
    assert [lr_factor(step, constant, 6) for step in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


# --- item 4: the last good checkpoint after a divergence ----------------------------------------------------


def test_the_divergence_test_is_finiteness_and_a_factor_over_the_running_median():
    test = DivergenceTest()
    assert test.failure(float("nan")) == "loss became non-finite (nan)"
    assert test.failure(1e6) is None  # the first loss has no reference: only finiteness
    test = DivergenceTest([1.0, 0.5, 1.5])  # the running median: 1.0
    assert test.failure(BLOWUP_FACTOR * 0.99) is None  # passes, and joins the history (median now 1.25)
    assert test.failure(BLOWUP_FACTOR * 1.3) == (
        f"loss blew up ({BLOWUP_FACTOR * 1.3:.4g} > {BLOWUP_FACTOR:g} x the running median 1.25)"
    )
    assert list(test.history) == [1.0, 0.5, 1.5, BLOWUP_FACTOR * 0.99]  # a failing loss does not join it
    assert test.failure(float("inf")) == "loss became non-finite (inf)"


def test_the_issues_blow_up_names_no_checkpoint_because_none_holds_good_weights(tmp_path):
    """lr 1e6 without warm-up: step 1 is computed from the initial weights, and its update blows them up to
    ~1e6. The checkpoint after step 1 holds those weights (step 2's loss, computed from them, is nan), so it is
    not good; it used to be named the last good checkpoint."""
    run = tmp_path / "run"
    config = tiny_config(
        run, recipe={"lr": 1e6, "warmup_steps": 0}, budget={"total_steps": 20, "checkpoint_every_steps": 1}
    )
    with pytest.raises(TrainingDiverged, match=r"at step 2; the last good checkpoint is none"):
        train(validate_config(config), progress=False)
    status = _status(run)
    assert status["status"] == "diverged" and "step_000001" not in status["message"]
    assert (
        checkpoint.latest_checkpoint(run / "checkpoints") is None
    )  # nothing to resume diverged weights from
    assert _largest_weight(run / "checkpoints" / "step_000001.diverged") > 1e5


def test_the_last_good_checkpoint_holds_the_weights_from_before_the_blow_up(tmp_path, monkeypatch):
    """Steps 1-3 train normally; step 4 runs at lr 1e6, so the checkpoint after it holds blown-up weights and
    step 5's loss (computed from them) fails the test. The good one is step 3's, though rotation keeps only one
    checkpoint besides it."""
    calls = []

    def train_step_with_a_blow_up_at_step_4(optimization, inputs, accelerator):
        calls.append(None)
        if len(calls) == 4:
            for group in optimization.optimizer.param_groups:
                group["lr"] = 1e6
        return train_step(optimization, inputs, accelerator)

    monkeypatch.setattr(loop, "train_step", train_step_with_a_blow_up_at_step_4)
    run = tmp_path / "run"
    config = tiny_config(run, budget={"total_steps": 12, "checkpoint_every_steps": 1, "keep_checkpoints": 1})
    with pytest.raises(TrainingDiverged, match=r"at step 5; the last good checkpoint is \S+step_000003"):
        train(validate_config(config), progress=False)
    good = checkpoint.latest_checkpoint(run / "checkpoints")
    assert good.name == "step_000003" and good == checkpoint.last_good_checkpoint(run / "checkpoints")
    assert str(good) in _status(run)["message"]
    assert _largest_weight(good) < 10  # the size the weights had before the blow-up (initial: ~1)
    assert _largest_weight(run / "checkpoints" / "step_000004.diverged") > 1e5


# --- item 5: the record cannot drift from what was trained; status.json after every kind of exit ----------------


def test_a_run_folder_refuses_evaluation_settings_that_would_mix_incomparable_results(tmp_path):
    from t2iscale.eval.along_training import evaluation_hooks

    run = tmp_path / "run"
    evaluation = {"every_steps": 2, "per_category": 1, "sampler_steps": 2, "seeds": [0]}
    first = validate_config(tiny_config(run, budget={"total_steps": 2}, eval=evaluation))
    train(first, hooks=evaluation_hooks(first), progress=False)
    assert {record["n_images"] for record in read_jsonl(run / "eval" / "eval.jsonl")} == {6}

    more_seeds = tiny_config(run, budget={"total_steps": 4}, eval={**evaluation, "seeds": [0, 1]})
    with pytest.raises(UserError, match=r"differs in eval\.seeds\)"):
        train(validate_config(more_seeds), progress=False)
    assert json.loads((run / "config.json").read_text())["eval"]["seeds"] == [0]  # what was done

    # The evaluation batch changes nothing an image depends on; the budget may grow.
    extended = validate_config(
        tiny_config(run, budget={"total_steps": 4}, eval={**evaluation, "batch_size": 2})
    )
    train(extended, hooks=evaluation_hooks(extended), progress=False)
    assert {record["n_images"] for record in read_jsonl(run / "eval" / "eval.jsonl")} == {6}
    recorded = json.loads((run / "config.json").read_text())
    assert (recorded["budget"]["total_steps"], recorded["eval"]["batch_size"]) == (4, 2)


def test_a_budget_below_the_trained_steps_or_a_cosine_budget_change_is_refused(tmp_path):
    train(validate_config(tiny_config(tmp_path / "run", budget={"total_steps": 4})), progress=False)
    with pytest.raises(UserError, match=r"budget\.total_steps 2 is below the 4 steps"):
        train(validate_config(tiny_config(tmp_path / "run", budget={"total_steps": 2})), progress=False)

    cosine = {"lr_schedule": "cosine"}
    train(
        validate_config(tiny_config(tmp_path / "cos", budget={"total_steps": 2}, recipe=cosine)),
        progress=False,
    )
    with pytest.raises(UserError, match=r"recipe\.lr_schedule 'cosine' decays over budget\.total_steps"):
        train(validate_config(tiny_config(tmp_path / "cos", recipe=cosine)), progress=False)
    assert json.loads((tmp_path / "cos" / "config.json").read_text())["budget"]["total_steps"] == 2


def test_a_folder_whose_run_did_nothing_takes_a_corrected_config(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no data here")

    monkeypatch.setattr(loop, "build_components", broken)
    with pytest.raises(RuntimeError):
        train(validate_config(tiny_config(tmp_path / "run", recipe={"lr": 2e-3})), progress=False)
    assert _status(tmp_path / "run")["status"] == "failed"
    monkeypatch.undo()
    result = train(validate_config(tiny_config(tmp_path / "run", budget={"total_steps": 2})), progress=False)
    assert result.status == "finished"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["lr"] == 1e-3


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (RuntimeError("out of ideas"), "failed", "RuntimeError: out of ideas at step 2"),
        (KeyboardInterrupt(), "interrupted", "interrupted (KeyboardInterrupt) at step 2"),
        (OSError(errno.ENOSPC, "No space left on device"), "failed", "disk full"),
    ],
    ids=["failure", "ctrl-c", "disk-full"],
)
def test_status_json_is_truthful_after_every_kind_of_exit(tmp_path, monkeypatch, error, status, words):
    calls = []

    def train_step_that_stops_at_step_3(*args):
        calls.append(None)
        if len(calls) == 3:
            raise error
        return train_step(*args)

    monkeypatch.setattr(loop, "train_step", train_step_that_stops_at_step_3)
    with pytest.raises(type(error)):
        train(validate_config(tiny_config(tmp_path / "run")), progress=False)
    recorded = _status(tmp_path / "run")
    assert (recorded["status"], recorded["step"]) == (status, 2)
    assert words in recorded["message"] and "resumes from step_000002" in recorded["message"]


def test_a_full_disk_during_a_checkpoint_is_recorded_and_frees_the_partial_checkpoint(tmp_path, monkeypatch):
    """The disk fills while the checkpoint after step 4 is written: no new file can be created from then on
    (the status too is written by rewriting the old file in place). The same command resumes afterwards."""
    write_text = pathlib.Path.write_text
    full = []

    def write_text_on_a_disk_that_fills(path, *args, **kwargs):
        if path.name == checkpoint.STATE_FILE and path.parent.name == "step_000004.tmp":
            full.append(path)
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_text(path, *args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(pathlib.Path, "write_text", write_text_on_a_disk_that_fills)
    with pytest.raises(OSError, match="No space left"):
        train(validate_config(tiny_config(run)), progress=False)
    monkeypatch.undo()
    recorded = _status(run)
    assert (recorded["status"], recorded["step"]) == ("failed", 4)
    assert recorded["message"].startswith("disk full") and "resumes from step_000002" in recorded["message"]
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["step_000002"]

    train(validate_config(tiny_config(tmp_path / "clean")), progress=False)
    assert train(validate_config(tiny_config(run)), progress=False).resumed_from == 2
    assert _status(run)["status"] == "finished"
    clean, resumed = final_weights(tmp_path / "clean"), final_weights(run)
    assert all(torch.equal(clean[name], resumed[name]) for name in clean)


def test_rotation_keeps_the_newest_good_checkpoint_until_a_loss_has_judged_the_newest(tmp_path):
    root = tmp_path / "checkpoints"

    def steps():
        return [step for step, _ in checkpoint.complete_checkpoints(root)]

    def save(step):  # what save_checkpoint leaves, then its rotation (keep_checkpoints 1)
        (root / checkpoint.step_dir_name(step)).mkdir(parents=True)
        (root / checkpoint.step_dir_name(step) / checkpoint.STATE_FILE).write_text("{}")
        checkpoint.prune(root, 1)

    save(2)
    checkpoint.mark_good(root, 2, judged_by_step=3, loss=1.0, keep=1)
    save(4)
    assert steps() == [2, 4]  # no loss has judged step 4's weights yet: step 2's, the good ones, stay
    checkpoint.mark_good(root, 4, judged_by_step=5, loss=1.0, keep=1)
    assert steps() == [4]
    save(6)
    checkpoint.prune(root, 1, keep_good=False)  # a finished run: no loss will judge step 6
    assert steps() == [6]

"""Inputs made ahead on a thread: same order, same models, errors at the step that needed them, clean shutdown."""

import threading
import time

import pytest
import torch

from t2iscale.errors import UserError
from t2iscale.train.config import validate_config
from t2iscale.train.loop import train
from t2iscale.train.prefetch import Prefetcher, pinned, resolve_prefetch
from t2iscale.train.sources import Batch, StepInputs

from .helpers import final_weights, tiny_config


def _inputs(step: int) -> StepInputs:
    return StepInputs(
        step=step,
        batch=Batch(x0=torch.full((2, 1, 2, 2), float(step))),
        noise=torch.zeros(2, 1, 2, 2),
        time=torch.zeros(2),
        drop=torch.zeros(2, dtype=torch.bool),
        source_state={"position": 2 * (step + 1)},
    )


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_inputs_come_in_step_order_from_the_first_step(depth):
    with Prefetcher(_inputs, first_step=5, depth=depth) as prefetcher:
        got = [prefetcher.next() for _ in range(6)]
    assert [item.step for item in got] == list(range(5, 11))
    assert [item.source_state["position"] for item in got] == [12, 14, 16, 18, 20, 22]


def test_an_error_while_making_inputs_is_raised_at_the_step_that_needs_them():
    made = []

    def make(step):
        made.append(step)
        if step == 3:
            raise UserError("shard 'shard-000002.safetensors': corrupt")
        return _inputs(step)

    with Prefetcher(make, first_step=0, depth=2) as prefetcher:
        assert [prefetcher.next().step for _ in range(3)] == [0, 1, 2]
        with pytest.raises(UserError, match="shard-000002"):
            prefetcher.next()
    assert made == [0, 1, 2, 3]  # nothing made after the failure


def test_close_stops_a_thread_that_waits_for_room_and_makes_no_more():
    made = []

    def make(step):
        made.append(step)
        return _inputs(step)

    prefetcher = Prefetcher(make, first_step=0, depth=2)
    prefetcher.next()
    time.sleep(0.3)  # the thread fills the queue and waits
    prefetcher.close()
    assert not any(thread.name == "t2iscale-prefetch" for thread in threading.enumerate())
    assert len(made) <= 4  # one taken, two queued, at most one waiting


def test_nothing_is_made_for_steps_past_the_end_and_asking_for_one_is_an_error():
    made = []

    def make(step):
        made.append(step)
        return _inputs(step)

    with Prefetcher(make, first_step=2, depth=3, end_step=4) as prefetcher:
        assert [prefetcher.next().step for _ in range(2)] == [2, 3]
        time.sleep(0.2)
        with pytest.raises(RuntimeError, match="no inputs for step 4"):
            prefetcher.next()
    assert made == [2, 3]


def test_negative_depth_is_refused():
    with pytest.raises(ValueError, match="prefetch depth"):
        Prefetcher(_inputs, first_step=0, depth=-1)


def test_prefetching_trains_the_very_same_model_as_making_inputs_in_the_loop(tmp_path):
    in_loop = tiny_config(tmp_path / "in_loop", budget={"total_steps": 4}, data={"prefetch_batches": 0})
    ahead = tiny_config(tmp_path / "ahead", budget={"total_steps": 4}, data={"prefetch_batches": 3})
    train(validate_config(in_loop), progress=False)
    train(validate_config(ahead), progress=False)
    a, b = final_weights(tmp_path / "in_loop"), final_weights(tmp_path / "ahead")
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_run_resumed_with_another_prefetch_depth_continues_from_the_batch_it_trained_on(tmp_path):
    # The first part makes 3 batches ahead of each checkpoint; the checkpoint must hold the position of the
    # batch trained on, or the resumed part would skip data and end with other weights.
    budget = {"total_steps": 4, "checkpoint_every_steps": 2}
    reference = tiny_config(tmp_path / "reference", budget=budget, data={"prefetch_batches": 0})
    train(validate_config(reference), progress=False)
    first = tiny_config(
        tmp_path / "resumed", budget={**budget, "total_steps": 2}, data={"prefetch_batches": 3}
    )
    train(validate_config(first), progress=False)
    second = tiny_config(tmp_path / "resumed", budget=budget, data={"prefetch_batches": 0})
    assert train(validate_config(second), progress=False).resumed_from == 2
    a, b = final_weights(tmp_path / "reference"), final_weights(tmp_path / "resumed")
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_auto_prefetches_on_cuda_only_and_a_number_is_taken_as_given():
    assert resolve_prefetch("auto", torch.device("cuda", 0)) == 2
    assert resolve_prefetch("auto", torch.device("cpu")) == 0
    assert resolve_prefetch(3, torch.device("cpu")) == 3
    with Prefetcher.for_device(_inputs, 0, torch.device("cpu")) as prefetcher:  # the loop's: in line on CPU
        assert prefetcher.depth == 0 and prefetcher.next().step == 0


def test_a_negative_prefetch_depth_in_the_config_names_the_key(tmp_path):
    with pytest.raises(UserError, match=r"data\.prefetch_batches: .*>= 0 or 'auto'"):
        validate_config(tiny_config(tmp_path / "run", data={"prefetch_batches": -1}))


def test_pinned_copies_every_tensor_and_keeps_every_other_field(monkeypatch):
    from t2iscale.train import prefetch

    # pin_memory needs CUDA; a clone stands in for it, so the copy itself is checked here.
    monkeypatch.setattr(prefetch, "_pin", lambda t: None if t is None else t.clone())
    original = _inputs(7)
    original.batch.captions, original.data_counters = ["a", "b"], {"data/good_samples": 2}
    copy = pinned(original)
    assert copy.batch.x0 is not original.batch.x0 and torch.equal(copy.batch.x0, original.batch.x0)
    assert copy.noise is not original.noise and copy.time is not original.time
    assert (copy.step, copy.batch.captions, copy.source_state, copy.data_counters) == (
        7,
        ["a", "b"],
        {"position": 16},
        {"data/good_samples": 2},
    )
    assert copy.drop is original.drop and copy.batch.global_rows is original.batch.global_rows

"""Caption dropout, how classifier-free guidance is trained: the recipe's 10% of captions are dropped (DESIGN.md,
the recipe). The coin is drawn per step with the rest of the step's randomness (`StepInputs.draw`) and applied by
the conditioner the training step runs (`t2iscale.train.model`)."""

import pytest
import torch

from t2iscale.diffusion.objectives import make_objective
from t2iscale.errors import UserError
from t2iscale.train.config import RecipeConfig, validate_config
from t2iscale.train.model import LearnedTextConditioner
from t2iscale.train.sources import Batch, StepInputs

from .helpers import tiny_config

GLOBAL_BATCH = 20000


def _drop(step: int, probability: float, seed: int = 0) -> torch.Tensor:
    batch = Batch(x0=torch.zeros(GLOBAL_BATCH, 1, 1, 1))
    return StepInputs.draw(step, batch, GLOBAL_BATCH, make_objective(), seed, probability).drop


def test_caption_dropout():
    assert RecipeConfig().caption_dropout == 0.1
    dropped = _drop(step=3, probability=0.1)
    assert dropped.dtype == torch.bool and dropped.shape == (GLOBAL_BATCH,)
    assert abs(dropped.float().mean().item() - 0.1) < 0.01
    assert torch.equal(dropped, _drop(step=3, probability=0.1))  # from (run seed, step) alone
    assert not torch.equal(dropped, _drop(step=4, probability=0.1))
    assert not _drop(step=3, probability=0.0).any()
    assert _drop(step=3, probability=1.0).all()
    with pytest.raises(UserError, match=r"recipe\.caption_dropout"):
        validate_config(tiny_config("/tmp/never-written", recipe={"caption_dropout": 1.5}))


class _Recorder(torch.nn.Module):
    """Stands in for the learned text encoder: records what it is asked to encode."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def encode(self, captions):
        self.seen.append(list(captions))
        return torch.zeros(len(captions), 2, 3), torch.ones(len(captions), 2, dtype=torch.bool)


def test_the_learned_conditioner_encodes_dropped_captions_as_the_empty_caption():
    recorder = _Recorder()
    conditioner = LearnedTextConditioner(recorder)
    conditioner(torch.tensor([False, True, False]), captions=["a red circle", "a blue square", "two stars"])
    assert recorder.seen == [["a red circle", "", "two stars"]]

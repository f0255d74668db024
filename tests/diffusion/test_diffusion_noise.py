import pytest
import torch

from t2iscale.diffusion import initial_noise
from t2iscale.errors import UserError


def test_noise_of_a_seed_ignores_the_rest_of_the_batch():
    batch = initial_noise([3, 17, 42], (4, 8, 8))
    assert batch.shape == (3, 4, 8, 8) and batch.dtype == torch.float32
    assert torch.equal(batch[1], initial_noise([17], (4, 8, 8))[0])
    assert torch.equal(batch[2], initial_noise([42, 3], (4, 8, 8))[0])
    assert torch.equal(batch[0], initial_noise([99, 100, 101, 3], (4, 8, 8))[3])
    assert not torch.equal(batch[0], batch[1])


def test_noise_does_not_depend_on_the_global_rng():
    torch.manual_seed(0)
    first = initial_noise([5], (2, 4, 4))
    torch.manual_seed(1)
    torch.randn(10)
    assert torch.equal(first, initial_noise([5], (2, 4, 4)))


def test_noise_dtype_is_a_cast_of_the_float32_draw():
    full = initial_noise([1, 2], (4, 4, 4))
    half = initial_noise([1, 2], (4, 4, 4), device="cpu", dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert torch.equal(half, full.to(torch.bfloat16))
    assert abs(initial_noise(list(range(64)), (4, 8, 8)).std().item() - 1) < 0.05


def test_bad_seeds_are_user_errors():
    with pytest.raises(UserError, match="position 1"):
        initial_noise([1, "2"], (4,))
    with pytest.raises(UserError, match="at least one seed"):
        initial_noise([], (4,))

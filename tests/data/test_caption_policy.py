import random

import pytest

from t2iscale.data.caption_policy import CAPTION_POLICIES, choose_caption
from t2iscale.errors import UserError

SYN = [f"syn{i}" for i in range(7)]


def test_alt_and_syn1_are_fixed():
    rng = random.Random(0)
    assert {choose_caption("alt", "a", SYN, rng) for _ in range(20)} == {"a"}
    assert {choose_caption("syn1", "a", SYN, rng) for _ in range(20)} == {"syn0"}


def test_syn5_draws_only_from_top5_and_all_of_them():
    rng = random.Random(0)
    seen = {choose_caption("syn5", "a", SYN, rng) for _ in range(500)}
    assert seen == set(SYN[:5])


def test_mix_is_half_alt():
    rng = random.Random(0)
    draws = [choose_caption("mix", "a", SYN, rng) for _ in range(4000)]
    alt_fraction = draws.count("a") / len(draws)
    assert 0.47 < alt_fraction < 0.53
    assert set(draws) - {"a"} == set(SYN[:5])


def test_policy_needing_synthetic_captions_says_so():
    with pytest.raises(ValueError, match="synthetic"):
        choose_caption("syn1", "a", [], random.Random(0))


def test_unknown_policy_is_a_user_error():
    with pytest.raises(UserError, match="valid policies"):
        choose_caption("synthetic", "a", SYN, random.Random(0))
    assert len(CAPTION_POLICIES) == 4

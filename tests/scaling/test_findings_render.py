"""`t2iscale compare`'s text for a pair of arms: the cautions and notes a reader needs beside the numbers."""

import numpy as np
from simulated import two_arms

from t2iscale.findings.compare import PairResult, _pair_lines
from t2iscale.scaling.arms import MATCH_AXES
from t2iscale.scaling.compare import compare_arms


def test_a_verdict_the_exact_test_over_runs_cannot_reach_carries_a_caution():
    rng = np.random.default_rng(3)
    a, b = two_arms(rng, 0.25, seeds=2, prompts=30, seed_sd=0.0)  # a large effect, 2 seeds per arm
    comparisons = [compare_arms(a, b, axis, value_range=(0.0, 1.0)) for axis in MATCH_AXES]
    assert comparisons[0].verdict == "A > B" and comparisons[0].p_permutation_floor == 2 / 6
    text = "\n".join(_pair_lines(PairResult({}, a, b, comparisons, None), 0.95))
    assert "caution (step): the exact test over runs cannot go below p = 0.33 with this many runs" in text
    assert "exact, over the 6 assignments of 4 runs to the two arms (smallest attainable p 0.333)" in text
    assert "df step " in text and "t intervals over training seeds and prompts" in text
    assert text.splitlines()[0].count(", 2 training seeds)") == 2  # a count of seeds, not a seed's number
    assert "not comparable: no common params" not in text  # one N each, and equal: comparable

import math

import numpy as np
import pytest
from scipy import stats
from simulated import prompt_difficulty, run_curve

from t2iscale.errors import UserError
from t2iscale.eval.intervals import combine, p_value, per_prompt_scores, replicate_estimate
from t2iscale.eval.samples import SampleScores


def _samples(prompts, seeds, values, categories=None):
    return SampleScores(tuple(prompts), tuple(seeds), np.asarray(values, dtype=float), categories)


def test_per_prompt_scores_average_each_prompts_eval_seeds_over_the_shared_pairs():
    first = _samples(["a", "a", "b", "b", "c"], [0, 1, 0, 1, 0], [1.0, 0.0, 0.5, 0.5, 1.0])
    second = _samples(["b", "a", "a", "b"], [1, 1, 0, 0], [0.0, 1.0, 1.0, 1.0])  # no prompt c
    prompts, n_pairs, table = per_prompt_scores([first, second])
    assert prompts == ("a", "b") and n_pairs == 4
    np.testing.assert_allclose(table, [[0.5, 0.5], [1.0, 0.5]])
    with pytest.raises(UserError, match="share no \\(prompt, eval seed\\) pair"):
        per_prompt_scores([first, _samples(["z"], [0], [1.0])])


def test_one_run_interval_is_the_t_interval_of_its_prompt_means():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, 40)
    samples = _samples([f"p{i // 4}" for i in range(40)], [i % 4 for i in range(40)], values)
    estimate = replicate_estimate([samples])
    means = values.reshape(10, 4).mean(axis=1)
    half = stats.t.ppf(0.975, 9) * means.std(ddof=1) / math.sqrt(10)
    assert estimate.value == pytest.approx(values.mean())
    assert (estimate.lo, estimate.hi) == pytest.approx((means.mean() - half, means.mean() + half))
    assert estimate.n_prompts == 10 and estimate.n_samples == 40 and estimate.n_seeds == (1,)
    assert not estimate.seeds_included and "within one training seed" in estimate.method
    assert estimate.n_text() == "n = 10 prompts, 40 images per evaluation, 1 training seed"


def test_intervals_are_clipped_to_the_metric_range_and_say_so():
    samples = _samples(["a", "b", "c"], [0, 0, 0], [1.0, 1.0, 0.0])
    free = replicate_estimate([samples])
    clipped = replicate_estimate([samples], value_range=(0.0, 1.0))
    assert free.lo < 0 and free.hi > 1
    assert (clipped.lo, clipped.hi) == (0.0, 1.0) and clipped.clipped and "clipped" in clipped.method


def test_seed_variance_widens_the_interval_of_replicates():
    rng = np.random.default_rng(3)
    difficulty = prompt_difficulty(rng, 36)
    flat = np.zeros(36)

    def runs(seed_effects):
        return [
            run_curve(f"r{i}", rng, difficulty, [0.6], effect, flat, steps=(1800,)).samples[0]
            for i, effect in enumerate(seed_effects)
        ]

    similar = replicate_estimate(runs([0.0, 0.0, 0.0]))
    spread = replicate_estimate(runs([-0.1, 0.0, 0.1]))
    assert spread.seeds_included and spread.n_seeds == (3,)
    assert spread.hi - spread.lo > 1.5 * (similar.hi - similar.lo)
    assert "training seeds and prompts" in spread.method


def test_one_runs_interval_covers_the_prompt_populations_mean():
    # A fixed model scored on 36 prompts drawn from a population (3 questions each, 8 eval seeds per prompt).
    rng = np.random.default_rng(11)
    truth = 0.6  # the expected score over prompts: difficulties have mean 0 and stay inside (0.02, 0.98)
    covered, studies = 0, 500
    for _ in range(studies):
        curve = run_curve("r", rng, prompt_difficulty(rng, 36), [truth], 0.0, np.zeros(36), steps=(1800,))
        estimate = replicate_estimate([curve.samples[0]])
        covered += estimate.lo <= truth <= estimate.hi
    assert 0.93 <= covered / studies <= 0.97, covered / studies


def test_p_value_agrees_with_the_interval():
    groups = [np.array([[0.1, 0.3, 0.2, 0.25, 0.15]])]
    estimate = combine(groups, 5)
    assert (estimate.lo > 0) == (p_value(estimate) < 0.05)
    degenerate = combine([np.zeros((2, 4))], 4)
    assert degenerate.se == 0 and (degenerate.lo, degenerate.hi) == (0.0, 0.0) and p_value(degenerate) == 1.0


def test_combine_errors():
    with pytest.raises(UserError, match="at least 2 prompts, got 1"):
        combine([np.ones((3, 1))], 1)
    with pytest.raises(UserError, match="strictly between 0 and 1"):
        combine([np.ones((1, 3))], 3, level=1.5)


def test_a_mean_outside_the_range_is_clamped_like_the_metric_and_the_interval_stays_ordered():
    # CLIP score: per-image 100·cos may be negative, the metric clamps its mean at 0
    samples = _samples(["a", "b", "c", "d"], [0, 0, 0, 0], [-30.0, -20.0, -25.0, -12.0])
    estimate = replicate_estimate([samples], value_range=(0.0, 100.0))
    assert (estimate.value, estimate.lo, estimate.hi) == (0.0, 0.0, 0.0) and estimate.clipped
    straddling = replicate_estimate(
        [_samples(["a", "b", "c"], [0, 0, 0], [-30.0, 5.0, 10.0])], value_range=(0.0, 100.0)
    )
    assert straddling.lo == 0.0 <= straddling.value <= straddling.hi


def test_the_method_says_which_configurations_seed_variance_is_not_covered():
    rng = np.random.default_rng(4)
    groups = [rng.uniform(0, 1, (2, 8)), rng.uniform(0, 1, (1, 8))]
    estimate = combine(groups, 8)
    assert estimate.n_seeds == (2, 1) and not estimate.seeds_included
    assert "the seed variance of 1 configuration(s) with one seed is not covered" in estimate.method

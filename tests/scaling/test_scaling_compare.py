import itertools

import numpy as np
import pytest
from simulated import prompt_difficulty, run_curve, two_arms

from t2iscale.errors import UserError
from t2iscale.eval.intervals import per_prompt_scores
from t2iscale.scaling.arms import Arm, Configuration
from t2iscale.scaling.compare import NOT_SEPARABLE, compare_arms

TIFA = (0.0, 1.0)


def test_a_planted_effect_of_five_points_is_found():
    # 4 training seeds per arm, 100 prompts × 8 eval seeds, A's answers 0.05 likelier to be right
    rng = np.random.default_rng(2024)
    studies, found, effects = 100, 0, []
    for _ in range(studies):
        a, b = two_arms(rng, 0.05, seeds=4, prompts=100)
        comparison = compare_arms(a, b, "step", value_range=TIFA)
        found += comparison.effect.lo > 0
        effects.append(comparison.effect.value)
    assert found / studies >= 0.95
    assert np.mean(effects) == pytest.approx(0.05, abs=0.005)
    assert comparison.verdict in ("A > B", NOT_SEPARABLE)


def test_a_null_effect_is_covered_at_the_nominal_rate():
    # 3 seeds per arm with large seed effects: where a bootstrap over 3 seeds runs narrow
    rng = np.random.default_rng(7)
    studies, covered = 400, 0
    for _ in range(studies):
        a, b = two_arms(rng, 0.0, seeds=3, seed_sd=0.04)
        effect = compare_arms(a, b, "step", value_range=TIFA).effect
        covered += effect.lo <= 0 <= effect.hi
    assert covered / studies >= 0.93, covered / studies


def test_the_difference_is_paired_by_prompt_and_eval_seed():
    rng = np.random.default_rng(1)
    a, b = two_arms(rng, 0.05, seeds=2, prompts=20, difficulty_sd=0.3)
    comparison = compare_arms(a, b, "step", value_range=TIFA)
    assert comparison.at == 1800 and comparison.read_as == ("A at step 1800", "B at step 1800")
    evaluations = a.configurations[0].samples(1800) + b.configurations[0].samples(1800)
    _, _, table = per_prompt_scores(evaluations)  # (4 runs, 20 prompts)
    assert comparison.effect.value == pytest.approx(table[:2].mean() - table[2:].mean())
    assert comparison.a.value == pytest.approx(table[:2].mean()) and comparison.effect.n_seeds == (2, 2)
    # pairing: the shared prompt difficulty cancels, so the difference is far tighter than unpaired arms give
    assert comparison.effect.se < 0.6 * np.hypot(comparison.a.se, comparison.b.se)


def test_matched_compute_interpolates_the_larger_arm_sample_by_sample():
    rng = np.random.default_rng(5)
    difficulty, flat = prompt_difficulty(rng, 12), np.zeros(12)
    small = run_curve("small", rng, difficulty, [0.5, 0.6], 0.0, flat, steps=(900, 1800), flops_per_step=1e9)
    big = run_curve("big", rng, difficulty, [0.5, 0.7], 0.0, flat, steps=(900, 1800), flops_per_step=1.5e9)
    a = Arm("big", (Configuration("big", "big", (big,)),))
    b = Arm("small", (Configuration("small", "small", (small,)),))
    comparison = compare_arms(a, b, "compute", value_range=TIFA)
    assert comparison.at == pytest.approx(1800e9)  # the smaller arm's final compute
    weight = (np.log(1800e9) - np.log(1350e9)) / (np.log(2700e9) - np.log(1350e9))
    expected_a = (1 - weight) * big.samples[0].mean + weight * big.samples[1].mean
    assert comparison.a.value == pytest.approx(expected_a)
    assert comparison.effect.value == pytest.approx(expected_a - small.samples[1].mean)
    assert "interpolated in log C" in comparison.read_as[0]
    # one run each: the exact sign-flip test over the 12 per-prompt differences
    _, _, table = per_prompt_scores([big.samples[0], big.samples[1], small.samples[1]])
    difference = (1 - weight) * table[0] + weight * table[1] - table[2]
    flips = np.array(list(itertools.product((1, -1), repeat=12)))
    expected_p = np.mean(np.abs(flips @ difference) >= abs(difference.sum()) - 1e-9)
    assert comparison.p_permutation == pytest.approx(expected_p)
    assert comparison.permutation_method.startswith("exact, over the 4096 sign flips")


def test_exact_permutation_over_runs_with_replicated_arms():
    rng = np.random.default_rng(8)
    a, b = two_arms(rng, 0.1, seeds=3, prompts=10)
    comparison = compare_arms(a, b, "step", value_range=TIFA)
    run_means = [s.mean for s in a.configurations[0].samples(1800) + b.configurations[0].samples(1800)]
    observed = abs(np.mean(run_means[:3]) - np.mean(run_means[3:]))
    splits = list(itertools.combinations(range(6), 3))
    expected = np.mean(
        [
            abs(
                np.mean([run_means[i] for i in split])
                - np.mean([run_means[i] for i in range(6) if i not in split])
            )
            >= observed - 1e-12
            for split in splits
        ]
    )
    assert comparison.p_permutation == pytest.approx(expected) and comparison.p_permutation >= 0.1
    assert "20 assignments of 6 runs" in comparison.permutation_method
    assert "smallest attainable p 0.1" in comparison.permutation_method


def test_arms_that_cannot_be_read_at_one_x_say_why():
    rng = np.random.default_rng(9)
    difficulty, flat = prompt_difficulty(rng, 6), np.zeros(6)
    curves = [
        run_curve(f"c{i}", rng, difficulty, [0.5, 0.6], 0.0, flat, params=100_000 * (i + 1)) for i in range(3)
    ]
    configurations = [Configuration(c.run_id, c.run_id, (c,)) for c in curves]
    ladder = Arm("ladder", tuple(configurations[:2]))
    single = Arm("single", (configurations[2],))
    step = compare_arms(ladder, single, "step")
    assert not step.comparable and "spans 2 backbones" in step.reason and step.effect is None
    params = compare_arms(ladder, single, "params")
    assert (
        not params.comparable and "no common params" in params.reason and "no extrapolation" in params.reason
    )
    mid = run_curve("mid", rng, difficulty, [0.5, 0.6], 0.0, flat, params=150_000)
    within = compare_arms(ladder, Arm("mid", (Configuration("mid", "mid", (mid,)),)), "params")
    assert within.comparable and within.at == 150_000 and "interpolated in log N" in within.read_as[0]


def test_arms_without_shared_prompts_are_an_error():
    rng = np.random.default_rng(10)
    flat = np.zeros(4)
    one = run_curve("one", rng, prompt_difficulty(rng, 4), [0.5, 0.6], 0.0, flat)
    other = run_curve("other", rng, prompt_difficulty(rng, 4), [0.5, 0.6], 0.0, flat)
    renamed = other.samples[1]
    other = type(other)(
        **{
            **other.__dict__,
            "samples": [
                None,
                type(renamed)(tuple(f"q{p}" for p in renamed.prompt_ids), renamed.seeds, renamed.values),
            ],
        }
    )
    with pytest.raises(UserError, match="arms 'A' and 'B' share no \\(prompt, eval seed\\) pair"):
        compare_arms(
            Arm("A", (Configuration("a", "a", (one,)),)),
            Arm("B", (Configuration("b", "b", (other,)),)),
            "step",
        )


def test_ladders_that_meet_only_at_their_shared_reference_are_not_compared():
    # a C ladder below the reference and a TD ladder above it: their N ranges touch at the reference alone
    rng = np.random.default_rng(12)
    difficulty, flat = prompt_difficulty(rng, 6), np.zeros(6)
    curves = {
        name: run_curve(name, rng, difficulty, [0.5, 0.6], 0.0, flat, params=params)
        for name, params in (("c4", 100_000), ("ref", 200_000), ("td2", 300_000), ("td3", 400_000))
    }
    configurations = {name: Configuration(name, name, (curve,)) for name, curve in curves.items()}
    c_ladder = Arm("C", (configurations["c4"], configurations["ref"]))
    td_ladder = Arm("TD", (configurations["ref"], configurations["td2"], configurations["td3"]))
    comparison = compare_arms(td_ladder, c_ladder, "params")
    assert not comparison.comparable and comparison.effect is None
    assert "the arms meet only where they share runs (ref at step 1800)" in comparison.reason

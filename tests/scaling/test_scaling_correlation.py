import itertools
import math

import numpy as np
import pytest
from scipy import stats

from t2iscale.errors import UserError
from t2iscale.scaling.correlation import correlation_test, final_value_correlations
from t2iscale.scaling.points import Curve


def _runs(params, gmacs, finals):
    return [
        Curve(f"r{i}", f"r{i}", n, g, None, [0, 1], [0, 8], [0.0, 1e9], [0.0, s])
        for i, (n, g, s) in enumerate(zip(params, gmacs, finals))
    ]


def _by_key(results):
    return {(r.predictor, r.method): r for r in results}


def test_gmacs_predicts_better_than_params_when_the_metric_follows_compute():
    # Like the paper's Fig. 10: models of similar size but different compute; alignment follows compute.
    rng = np.random.default_rng(0)
    gmacs = np.geomspace(50, 800, 10)
    params = rng.permutation(np.linspace(8e8, 1.2e9, 10)).astype(int)  # unrelated to gmacs
    finals = 0.6 + 0.05 * np.log10(gmacs) + 0.002 * rng.standard_normal(10)
    results = _by_key(final_value_correlations(_runs(params, gmacs, finals)))
    assert results["gmacs", "spearman"].coefficient > 0.9 and results["gmacs", "spearman"].p_value < 1e-3
    assert results["gmacs", "pearson"].coefficient > 0.9 and results["gmacs", "pearson"].p_value < 1e-3
    assert abs(results["params", "spearman"].coefficient) < results["gmacs", "spearman"].coefficient
    assert results["params", "spearman"].p_value > results["gmacs", "spearman"].p_value
    # Pearson is on log(size) by default
    expected = stats.pearsonr(np.log(gmacs), finals)
    assert results["gmacs", "pearson"].coefficient == pytest.approx(expected.statistic)
    assert results["gmacs", "pearson"].log_predictor and not results["gmacs", "spearman"].log_predictor


def test_signs_follow_the_relation():
    size = np.array([1e8, 2e8, 4e8, 8e8, 1.6e9])
    rising = _by_key(
        final_value_correlations(_runs(size.astype(int), size / 1e7, [0.5, 0.52, 0.55, 0.6, 0.62]))
    )
    falling = _by_key(
        final_value_correlations(_runs(size.astype(int), size / 1e7, [0.62, 0.6, 0.55, 0.52, 0.5]))
    )
    for key in rising:
        assert rising[key].coefficient > 0.95
        assert falling[key].coefficient < -0.95
    assert rising["params", "spearman"].coefficient == pytest.approx(1.0)
    assert len(rising) == 4 and {r.n_runs for r in rising.values()} == {5}


def test_correlation_errors():
    with pytest.raises(UserError, match="at least 3 runs, got 2"):
        final_value_correlations(_runs([1, 2], [1.0, 2.0], [0.1, 0.2]))
    with pytest.raises(UserError, match="run 'r1' has no 'gmacs'"):
        final_value_correlations(_runs([1, 2, 3], [1.0, None, 2.0], [0.1, 0.2, 0.3]))
    with pytest.raises(UserError, match="every run has the same 'params'"):
        final_value_correlations(_runs([5, 5, 5], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3]))


def _enumerated_p(x, y, method):
    """Two-sided p by full enumeration: 2 × the smaller tail of the statistic over every ordering of y."""
    statistic = (
        (lambda a, b: stats.spearmanr(a, b).statistic)
        if method == "spearman"
        else (lambda a, b: stats.pearsonr(a, b).statistic)
    )
    observed = statistic(x, y)
    null = np.array([statistic(x, np.array(order)) for order in itertools.permutations(y)])
    tolerance = 1e-12
    tail = min(np.mean(null >= observed - tolerance), np.mean(null <= observed + tolerance))
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_small_n_p_values_are_exact(n, method):
    rng = np.random.default_rng(n)
    for trial in range(4):
        x = np.geomspace(1e5, 1e6, n) if trial else np.arange(1.0, n + 1)
        y = rng.uniform(0.4, 0.8, n) if trial < 3 else np.linspace(0.4, 0.8, n)  # the last: a perfect ranking
        coefficient, p, how = correlation_test(x, y, method)
        assert p == pytest.approx(_enumerated_p(x, y, method), abs=1e-12)
        assert how == f"exact permutation test over {math.factorial(n)} orderings"
    # a perfect ranking of n models: 2 of the n! orderings reach |rho| = 1
    assert correlation_test(np.arange(n), np.arange(n) ** 2, "spearman")[1] == pytest.approx(
        2 / math.factorial(n)
    )


def test_four_models_in_perfect_order_give_p_one_twelfth_not_zero():
    results = _by_key(
        final_value_correlations(_runs([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], [0.58, 0.65, 0.69, 0.72]))
    )
    assert results["params", "spearman"].coefficient == pytest.approx(1.0)
    assert results["params", "spearman"].p_value == pytest.approx(1 / 12)
    assert results["params", "spearman"].n_seeds == (1, 1, 1, 1)


def test_large_n_uses_the_t_approximation():
    x = np.arange(12.0)
    coefficient, p, how = correlation_test(x, x + np.sin(x), "spearman")
    assert how == "t approximation" and p == pytest.approx(stats.spearmanr(x, x + np.sin(x)).pvalue)

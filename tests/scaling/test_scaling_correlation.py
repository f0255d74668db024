import numpy as np
import pytest
from scipy import stats

from t2iscale.errors import UserError
from t2iscale.scaling.correlation import final_value_correlations
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

import numpy as np
import pytest
from scipy import stats

from t2iscale.errors import UserError
from t2iscale.scaling import fits
from t2iscale.scaling.fits import FitError, fit_law, predict
from t2iscale.scaling.published import PUBLISHED_LAWS


def _noisy_power(a, b, x, noise, seed):
    rng = np.random.default_rng(seed)
    return a * x**b + noise * rng.standard_normal(x.size)


def _assert_within_intervals(fit, truth: dict):
    for name, value in truth.items():
        lo, hi = fit.interval(name)
        assert lo <= value <= hi, f"{name}={value} outside [{lo}, {hi}] (estimate {fit.params[name]})"


def test_power_law_recovers_known_parameters():
    x = np.geomspace(1e3, 1e7, 30)
    y = _noisy_power(2.0, 0.3, x, noise=0.5, seed=1)
    fit = fit_law(x, y, "power")
    _assert_within_intervals(fit, {"a": 2.0, "b": 0.3})
    assert fit.params["b"] == pytest.approx(0.3, abs=0.01)
    assert fit.r2 > 0.99
    assert fit.intervals.shape == (2, 2) and fit.n_clusters == 30
    # one point per run: the least-squares covariance with n - 2 df
    assert list(fit.param_df) == [28.0, 28.0] and "n − k df" in fit.method


def test_power_law_interval_is_the_classical_t_interval_with_independent_points():
    x = np.geomspace(1, 1e4, 7)
    y = _noisy_power(0.5, 0.1, x, noise=0.01, seed=12)
    fit = fit_law(x, y, "power")
    design = np.stack([np.ones_like(x), np.log(x)], axis=1)
    theta, residual_ss, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
    se_b = np.sqrt(residual_ss[0] / (x.size - 2) * np.linalg.inv(design.T @ design)[1, 1])
    t = stats.t.ppf(0.975, x.size - 2)
    assert fit.interval("b") == pytest.approx((theta[1] - t * se_b, theta[1] + t * se_b), rel=1e-9)


def test_saturating_law_recovers_known_parameters():
    s_inf, a, b = 0.85, 40.0, 0.25
    x = np.geomspace(1e4, 1e9, 25)  # S from ~0.45 to ~0.84: the ceiling is visible
    rng = np.random.default_rng(2)
    y = s_inf - a * x**-b + 0.004 * rng.standard_normal(x.size)
    fit = fit_law(x, y, "saturating")
    _assert_within_intervals(fit, {"s_inf": s_inf, "a": a, "b": b})
    assert fit.params["s_inf"] == pytest.approx(s_inf, abs=0.02)


@pytest.mark.parametrize(
    ("axis", "x_lo", "x_hi"),
    [
        # C in GFLOPs: 1e19..1e21 training FLOPs, the paper's range of runs; S ~ 0.75..0.82
        ("compute", 1e10, 1e12),
        # D in millions of image-noun pairs: 0.1B..6B pairs; S ~ 0.73..0.83
        ("data", 1e2, 6e3),
    ],
)
def test_fit_on_the_papers_published_laws_returns_them(axis, x_lo, x_hi):
    law = PUBLISHED_LAWS[axis]
    x = np.geomspace(x_lo, x_hi, 15)
    y = _noisy_power(law.a, law.b, x, noise=0.003, seed=3)
    fit = fit_law(x, y, "power")
    _assert_within_intervals(fit, {"a": law.a, "b": law.b})
    assert fit.params["b"] == pytest.approx(law.b, abs=0.005)
    # the same fit in base units (FLOPs, pairs) keeps the exponent; only a changes, by x_scale^b
    base = fit_law(x * law.x_scale, y, "power")
    assert base.params["b"] == pytest.approx(fit.params["b"], rel=1e-9)
    assert base.params["a"] == pytest.approx(fit.params["a"] / law.x_scale ** fit.params["b"], rel=1e-9)


def test_published_laws_give_tifa_like_values_in_their_units():
    assert 0.7 < PUBLISHED_LAWS["compute"].at_base_units(1e20) < 0.85
    assert 0.7 < PUBLISHED_LAWS["data"].at_base_units(1e9) < 0.85


def test_prediction_intervals_contain_the_truth():
    x = np.geomspace(1e3, 1e6, 20)
    y = _noisy_power(0.3, 0.1, x, noise=0.005, seed=4)
    fit = fit_law(x, y, "power")
    x_new = np.array([2e3, 5e4, 1e6, 1e7])  # inside the range and 10x beyond it
    predictions = predict(fit, x_new)
    truth = 0.3 * x_new**0.1
    lo, hi = np.array([p.lo for p in predictions]), np.array([p.hi for p in predictions])
    value = np.array([p.value for p in predictions])
    assert np.all((lo <= truth) & (truth <= hi)), (lo, truth, hi)
    assert np.all(lo < value) and np.all(value < hi)
    assert np.all(np.diff(hi - lo)[1:] > 0)  # the interval widens as the prediction moves away from the data
    one = predict(fit, 1e7)
    assert isinstance(one.value, float) and (one.value, one.lo, one.hi) == pytest.approx(
        (value[-1], lo[-1], hi[-1])
    )


def test_saturating_prediction_intervals_cover_the_truth():
    x = np.geomspace(1e2, 1e6, 20)
    x_new = np.array([1e3, 1e5, 1e7])  # inside the range and 10x beyond it
    truth = 0.9 - 2.0 * x_new**-0.3
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(500 + seed)
        y = 0.9 - 2.0 * x**-0.3 + 0.005 * rng.standard_normal(x.size)
        fit = fit_law(x, y, "saturating")
        predictions = predict(fit, x_new)
        covered += sum(p.lo <= t <= p.hi for p, t in zip(predictions, truth))
        assert all(abs(p.value - t) < 0.02 for p, t in zip(predictions, truth))
    # nominal 95% from the linearised law (measured 0.93-0.97 at 6-10 points, see fits.py)
    assert covered >= 0.88 * 40 * len(x_new)


def test_prediction_outside_the_metric_range_is_refused_and_bands_are_clipped():
    x = np.geomspace(1e10, 1e13, 6)
    y = 0.02 * x**0.12 * np.exp(0.02 * np.random.default_rng(9).standard_normal(6))  # TIFA 0.31 .. 0.72
    fit = fit_law(x, y, "power")
    with pytest.raises(
        fits.OutOfRange, match=r"predicts \d+\.\d+ at X = 1e\+20, outside the metric's range \[0, 1\]"
    ):
        predict(fit, 1e20, (0.0, 1.0))
    near = predict(
        fit, 1e14, (0.0, 1.0)
    )  # the law itself is still below 1 (0.97), its interval reaches past it
    unclipped = predict(fit, 1e14)
    assert unclipped.hi > 1.0 and near.hi == 1.0 and near.clipped and not unclipped.clipped
    assert near.lo == unclipped.lo and near.value == unclipped.value
    band = predict(fit, [1e12, 1e20], (0.0, 1.0), refuse_outside=False)
    assert (band[1].value, band[1].lo, band[1].hi) == (1.0, 1.0, 1.0) and band[1].clipped
    assert not band[0].clipped and band[0].hi < 1.0


def test_goodness_of_fit():
    x = np.geomspace(1, 100, 10)
    exact = fit_law(x, 0.5 * x**0.2, "power")
    assert exact.r2 == pytest.approx(1.0) and exact.rmse == pytest.approx(0.0, abs=1e-12)
    assert exact.interval("b") == pytest.approx((0.2, 0.2))
    y = _noisy_power(0.5, 0.2, x, noise=0.02, seed=6)
    noisy = fit_law(x, y, "power")
    residuals = y - noisy(x)
    assert noisy.rmse == pytest.approx(np.sqrt(np.mean(residuals**2)))
    assert noisy.r2 == pytest.approx(1 - np.sum(residuals**2) / np.sum((y - y.mean()) ** 2))


def test_clustered_points_widen_the_interval_and_need_enough_runs():
    # 4 runs with 3 frontier points each: a run's points share its deviation from the law
    x = np.concatenate([np.geomspace(1, 3, 3) * 10.0**k for k in range(4)])
    clusters = np.repeat(["r0", "r1", "r2", "r3"], 3)
    run_effect = np.repeat([0.03, -0.02, 0.025, -0.03], 3)
    y = 0.02 * x**0.12 * np.exp(run_effect + 0.002 * np.random.default_rng(3).standard_normal(x.size))
    independent = fit_law(x, y, "power")
    clustered = fit_law(x, y, "power", clusters=clusters)
    assert np.array_equal(independent.estimate, clustered.estimate)
    width = lambda fit: np.subtract(*fit.interval("b")[::-1])  # noqa: E731
    assert width(clustered) > 2 * width(independent)
    assert "cluster-robust CR2" in clustered.method and clustered.n_clusters == 4
    with pytest.raises(FitError, match=r"needs points from at least 3 runs, got 2 \(12 points\)"):
        fit_law(x, y, "power", clusters=np.repeat(["a", "b"], 6))


@pytest.mark.parametrize(
    ("form", "x", "y", "match"),
    [
        ("power", [1, 2], [0.1, 0.2], "needs at least 3 points, got 2"),
        ("saturating", [1, 2, 3], [0.1, 0.2, 0.3], "needs at least 4 points, got 3"),
        ("power", [1, 0, 3], [0.1, 0.2, 0.3], r"needs X > 0; point 1 has X=0"),
        ("power", [1, 2, -3], [0.1, 0.2, 0.3], r"needs X > 0; point 2 has X=-3"),
        ("power", [1, 2, 3], [0.1, -0.2, 0.3], r"needs S > 0; point 1 \(X=2\) has S=-0.2"),
        ("power", [5, 5, 5], [0.1, 0.2, 0.3], "needs at least 2 distinct X values, got 1"),
        ("saturating", [1, 1, 2, 2], [0.1, 0.2, 0.3, 0.4], "needs at least 3 distinct X values, got 2"),
        ("power", [1, 2, np.nan], [0.1, 0.2, 0.3], "point 2 is not finite"),
        ("cubic", [1, 2, 3], [0.1, 0.2, 0.3], "unknown law form 'cubic'"),
    ],
)
def test_clear_errors_on_bad_points(form, x, y, match):
    with pytest.raises(FitError if form != "cubic" else UserError, match=match):
        fit_law(x, y, form)


def test_saturating_fit_that_fails_says_why():
    x = np.geomspace(1e9, 1e12, 10)
    with pytest.raises(FitError, match="S does not rise towards a ceiling"):
        fit_law(x, 0.8 - 0.01 * np.log(x), "saturating")  # S falls with X
    with pytest.raises(FitError, match="S∞ ran to its upper bound.*no ceiling"):
        fit_law(x, 0.47 * x**0.02, "saturating")  # a pure power law: no ceiling in sight


def test_saturating_non_convergence_is_a_fit_error(monkeypatch):
    def no_convergence(*args, **kwargs):
        raise RuntimeError(
            "Optimal parameters not found: The maximum number of function evaluations is exceeded."
        )

    monkeypatch.setattr(fits, "curve_fit", no_convergence)
    x = np.geomspace(1e2, 1e6, 10)
    with pytest.raises(FitError, match="saturating fit did not converge: Optimal parameters not found"):
        fit_law(x, 0.9 - 2.0 * x**-0.3, "saturating")


def test_a_saturating_law_the_points_do_not_determine_says_so():
    # the demo's four models (TIFA against parameters N): one degree of freedom for three parameters
    x = np.array([114_275, 240_603, 413_059, 896_355])
    y = np.array([0.583, 0.654, 0.692, 0.720])
    with pytest.raises(FitError, match=r"not identified by these points: .* more than a factor 10 wide"):
        fit_law(x, y, "saturating")


def test_predict_rejects_non_positive_x():
    fit = fit_law([1, 2, 3], [0.1, 0.2, 0.3])
    with pytest.raises(UserError, match="predict needs finite X > 0"):
        predict(fit, 0.0)
    assert predict(fit, 4.0).value > 0.3

import numpy as np
import pytest

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
    fit = fit_law(x, y, "power", progress=False)
    _assert_within_intervals(fit, {"a": 2.0, "b": 0.3})
    assert fit.params["b"] == pytest.approx(0.3, abs=0.01)
    assert fit.r2 > 0.99
    assert fit.intervals.shape == (2, 2) and len(fit.bootstrap_estimates) == 1000


def test_saturating_law_recovers_known_parameters():
    s_inf, a, b = 0.85, 40.0, 0.25
    x = np.geomspace(1e4, 1e9, 25)  # S from ~0.45 to ~0.84: the ceiling is visible
    rng = np.random.default_rng(2)
    y = s_inf - a * x**-b + 0.004 * rng.standard_normal(x.size)
    fit = fit_law(x, y, "saturating", bootstrap=400, progress=False)
    _assert_within_intervals(fit, {"s_inf": s_inf, "a": a, "b": b})
    assert fit.params["s_inf"] == pytest.approx(s_inf, abs=0.02)
    assert fit.n_bootstrap_failed < 40


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
    fit = fit_law(x, y, "power", progress=False)
    _assert_within_intervals(fit, {"a": law.a, "b": law.b})
    assert fit.params["b"] == pytest.approx(law.b, abs=0.005)
    # the same fit in base units (FLOPs, pairs) keeps the exponent; only a changes, by x_scale^b
    base = fit_law(x * law.x_scale, y, "power", bootstrap=0)
    assert base.params["b"] == pytest.approx(fit.params["b"], rel=1e-9)
    assert base.params["a"] == pytest.approx(fit.params["a"] / law.x_scale ** fit.params["b"], rel=1e-9)


def test_published_laws_give_tifa_like_values_in_their_units():
    assert 0.7 < PUBLISHED_LAWS["compute"].at_base_units(1e20) < 0.85
    assert 0.7 < PUBLISHED_LAWS["data"].at_base_units(1e9) < 0.85


def test_power_intervals_cover_the_truth_at_about_the_nominal_rate():
    x = np.geomspace(1, 1e4, 12)
    covered = 0
    for seed in range(60):
        y = _noisy_power(0.5, 0.1, x, noise=0.01, seed=100 + seed)
        lo, hi = fit_law(x, y, "power", bootstrap=300, ci_level=0.9, seed=seed).interval("b")
        covered += lo <= 0.1 <= hi
    # nominal 90%; the percentile bootstrap is somewhat narrow with 12 points, never this bad unless broken
    assert covered >= 45


def test_prediction_intervals_contain_the_truth():
    x = np.geomspace(1e3, 1e6, 20)
    y = _noisy_power(0.3, 0.1, x, noise=0.005, seed=4)
    fit = fit_law(x, y, "power", progress=False)
    x_new = np.array([2e3, 5e4, 1e6, 1e7])  # inside the range and 10x beyond it
    value, lo, hi = predict(fit, x_new)
    truth = 0.3 * x_new**0.1
    assert np.all((lo <= truth) & (truth <= hi)), (lo, truth, hi)
    assert np.all(lo < value) and np.all(value < hi)
    assert np.all(np.diff(hi - lo)[1:] > 0)  # the interval widens as the prediction moves away from the data
    one = predict(fit, 1e7)
    assert isinstance(one[0], float) and one == pytest.approx((value[-1], lo[-1], hi[-1]))


def test_saturating_prediction_intervals_cover_the_truth():
    x = np.geomspace(1e2, 1e6, 20)
    x_new = np.array([1e3, 1e5, 1e7])  # inside the range and 10x beyond it
    truth = 0.9 - 2.0 * x_new**-0.3
    covered = 0
    for seed in range(15):
        rng = np.random.default_rng(500 + seed)
        y = 0.9 - 2.0 * x**-0.3 + 0.005 * rng.standard_normal(x.size)
        fit = fit_law(x, y, "saturating", bootstrap=200, seed=seed, progress=False)
        value, lo, hi = predict(fit, x_new)
        covered += int(np.sum((lo <= truth) & (truth <= hi)))
        assert np.all(np.abs(value - truth) < 0.02)
    # nominal 95%; the pairs-bootstrap percentile interval runs near 88% with 20 points (see fits.py)
    assert covered >= 0.75 * 15 * len(x_new)


def test_goodness_of_fit():
    x = np.geomspace(1, 100, 10)
    exact = fit_law(x, 0.5 * x**0.2, "power", bootstrap=0)
    assert exact.r2 == pytest.approx(1.0) and exact.rmse == pytest.approx(0.0, abs=1e-12)
    assert exact.intervals is None and exact.interval("a") is None
    y = _noisy_power(0.5, 0.2, x, noise=0.02, seed=6)
    noisy = fit_law(x, y, "power", bootstrap=0)
    residuals = y - noisy(x)
    assert noisy.rmse == pytest.approx(np.sqrt(np.mean(residuals**2)))
    assert noisy.r2 == pytest.approx(1 - np.sum(residuals**2) / np.sum((y - y.mean()) ** 2))


def test_bootstrap_is_seeded():
    x = np.geomspace(1, 100, 10)
    y = _noisy_power(0.5, 0.2, x, noise=0.02, seed=7)
    first, again = (fit_law(x, y, bootstrap=200, seed=3).intervals for _ in range(2))
    other = fit_law(x, y, bootstrap=200, seed=4).intervals
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


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
        fit_law(x, y, form, bootstrap=0)


def test_saturating_fit_that_fails_says_why():
    x = np.geomspace(1e9, 1e12, 10)
    with pytest.raises(FitError, match="S does not rise towards a ceiling"):
        fit_law(x, 0.8 - 0.01 * np.log(x), "saturating", bootstrap=0)  # S falls with X
    with pytest.raises(FitError, match="S∞ ran to its upper bound.*no ceiling"):
        fit_law(x, 0.47 * x**0.02, "saturating", bootstrap=0)  # a pure power law: no ceiling in sight


def test_saturating_non_convergence_is_a_fit_error(monkeypatch):
    def no_convergence(*args, **kwargs):
        raise RuntimeError(
            "Optimal parameters not found: The maximum number of function evaluations is exceeded."
        )

    monkeypatch.setattr(fits, "curve_fit", no_convergence)
    x = np.geomspace(1e2, 1e6, 10)
    with pytest.raises(FitError, match="saturating fit did not converge: Optimal parameters not found"):
        fit_law(x, 0.9 - 2.0 * x**-0.3, "saturating", bootstrap=0)


def test_too_few_successful_refits_is_an_error():
    # 4 points, 3 distinct X: most resamples miss one X value and cannot determine 3 parameters.
    x = np.array([1.0, 10.0, 100.0, 100.0])
    y = 0.9 - 0.5 * x**-0.5
    with pytest.raises(FitError, match=r"only \d+ of 200 bootstrap refits of the saturating law succeeded"):
        fit_law(x, y, "saturating", bootstrap=200, progress=False)


def test_predict_rejects_non_positive_x():
    fit = fit_law([1, 2, 3], [0.1, 0.2, 0.3], bootstrap=0)
    with pytest.raises(UserError, match="predict needs finite X > 0"):
        predict(fit, 0.0)
    value, lo, hi = predict(fit, 4.0)
    assert np.isnan(lo) and np.isnan(hi) and value > 0.3


def test_vectorised_power_refits_equal_one_fit_per_resample():
    x = np.geomspace(1, 1e3, 9)
    y = _noisy_power(0.5, 0.2, x, noise=0.01, seed=8)
    indices = np.random.default_rng(0).integers(0, x.size, size=(25, x.size))
    indices[0] = 4  # a resample of one repeated point cannot determine b
    law = fits.FORMS["power"]
    refits = law.fit_resamples(x, y, indices, start=None, progress=False)
    assert np.all(np.isnan(refits[0]))
    for row in range(1, len(indices)):
        sample = indices[row]
        if np.unique(sample).size >= 2:
            assert refits[row] == pytest.approx(law.fit(x[sample], y[sample]), rel=1e-9)

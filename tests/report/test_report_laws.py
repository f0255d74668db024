"""The report's analyses on synthetic curves with known laws, and their figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from t2iscale.report import plots
from t2iscale.report.laws import (
    dataset_sizes,
    fit_data_law,
    fit_frontier_law,
    higher_is_better,
    size_correlations,
)
from t2iscale.scaling.points import Curve

STEPS = (0, 100, 200, 400, 800, 1600)


def ladder(
    exponent: float = 0.05, sizes=(1e6, 4e6, 16e6), noun_pairs=(None,), noise: float = 0.0
) -> list[Curve]:
    """Runs whose metric follows S = 0.2·C^exponent exactly (plus optional noise); C = 6·params·images."""
    rng = np.random.default_rng(0)
    curves = []
    for params in sizes:
        for pairs in noun_pairs:
            images = [256 * step for step in STEPS]
            flops = [6.0 * params * n for n in images]
            values = [0.2 * max(c, 1.0) ** exponent * (1 + noise * rng.standard_normal()) for c in flops]
            run_id = f"n{params:.0e}" + ("" if pairs is None else f"-d{pairs:.0e}")
            curves.append(
                Curve(
                    run_id=run_id,
                    label=run_id,
                    params=int(params),
                    gmacs=params / 1e6,
                    dataset_noun_pairs=pairs,
                    steps=STEPS,
                    images_seen=images,
                    train_flops=flops,
                    values=values,
                    category={"counting": [v / 2 for v in values], "colors": values},
                )
            )
    return curves


def test_compute_law_recovers_the_exponent_with_an_interval():
    law = fit_frontier_law(ladder(noise=0.01), "compute", "tifa", bootstrap=200)
    assert law.reason is None and law.fit is not None
    assert law.fit.params["b"] == pytest.approx(0.05, abs=0.01)
    lo, hi = law.fit.interval("b")
    assert lo < law.fit.params["b"] < hi
    assert len(law.candidates) == 3 * (len(STEPS) - 1)  # step 0 has no compute
    band = law.band(points=20)
    assert band.x[0] == pytest.approx(law.frontier[0].x)
    assert band.x[-1] == pytest.approx(law.frontier[-1].x)
    assert np.all(band.lo <= band.value + 1e-12) and np.all(band.value <= band.hi + 1e-12)


def test_too_few_frontier_points_give_a_sentence_not_an_error():
    curve = ladder(sizes=(1e6,))[0]
    short = Curve(
        run_id="short",
        label="short",
        params=curve.params,
        gmacs=curve.gmacs,
        dataset_noun_pairs=None,
        steps=curve.steps[:3],
        images_seen=curve.images_seen[:3],
        train_flops=curve.train_flops[:3],
        values=curve.values[:3],
    )
    law = fit_frontier_law([short], "compute", "tifa", bootstrap=50)
    assert law.fit is None and law.band() is None
    assert law.reason.startswith("S = a·C^b cannot be fitted on the 2 Pareto-frontier points (of 2)")
    assert "at least 3 points" in law.reason


def test_lower_is_better_metrics_are_not_fitted():
    assert higher_is_better("tifa") and higher_is_better("clip") and not higher_is_better("fid")
    law = fit_frontier_law(ladder(), "compute", "fid", bootstrap=0)
    assert law.fit is None and "lower-is-better" in law.reason


def test_data_law_needs_several_dataset_sizes():
    one = ladder(noun_pairs=(1e6,))
    assert dataset_sizes(one) == [1_000_000]
    assert "one dataset size (D = 1,000,000)" in fit_data_law(one, "tifa", bootstrap=0).reason
    assert "no run records" in fit_data_law(ladder(), "tifa", bootstrap=0).reason
    several = ladder(noun_pairs=(1e6, 1e7, 1e8))
    law = fit_data_law(several, "tifa", bootstrap=100)
    assert law.axis.name == "data" and len(law.candidates) == 9


def test_size_correlations_or_the_reason():
    curves = ladder(sizes=(1e6, 2e6, 4e6, 8e6))
    correlations = size_correlations(curves)
    assert correlations.reason is None
    assert correlations.get("params", "spearman").coefficient == pytest.approx(1.0)
    assert correlations.get("gmacs", "pearson").n_runs == 4
    assert (
        size_correlations(curves[:2]).reason == "No correlations: correlations need at least 3 runs, got 2."
    )


def test_figures_are_pngs(tmp_path):
    curves = ladder(noise=0.01, noun_pairs=(1e6, 1e7))
    colors = plots.run_colors(curves)
    labels = {c.run_id: c.label for c in curves}
    law = fit_frontier_law(curves, "compute", "tifa", bootstrap=50)
    paths = [
        plots.alignment_curves(curves, colors, "steps", "tifa", 0.25, tmp_path / "steps.png"),
        plots.alignment_curves(curves, colors, "train_flops", "tifa", None, tmp_path / "flops.png"),
        plots.frontier_law(law, labels, colors, "tifa", 0.25, tmp_path / "frontier.png"),
        plots.frontier_law(
            fit_data_law(curves, "tifa", bootstrap=50), labels, colors, "tifa", None, tmp_path / "data.png"
        ),
        plots.size_scatter(curves, colors, "tifa", 0.25, size_correlations(curves), tmp_path / "size.png"),
        plots.category_bars(curves, colors, ["colors", "counting"], "tifa", tmp_path / "categories.png"),
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 300 and image.height >= 200


def test_short_tick_labels():
    assert plots.short_number(0.09) == "0.09"
    assert plots.short_number(250) == "250"
    assert plots.short_number(1.5e9) == "1.5e9"
    assert plots.short_number(3e-5) == "3e-5"

"""The report's analyses on synthetic configurations with known laws: law text, correlations, values with
intervals, and the figures. The sections are built from a `StudyData` made of these configurations, so every
branch (a fitted law, several dataset sizes, 4+ configurations) is exercised without training."""

from __future__ import annotations

import re

import numpy as np
import pytest

from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.samples import SampleScores
from t2iscale.findings.laws import frontier_law
from t2iscale.report import fmt, plots
from t2iscale.report.analyses import Analyses
from t2iscale.report.build import (
    ReportOptions,
    category_values,
    compute_section,
    configurations_text,
    correlation_rows,
    data_section,
    final_value,
    law_html,
    sample_value,
    size_correlations,
    size_section,
)
from t2iscale.report.collect import StudyData
from t2iscale.scaling.arms import Configuration
from t2iscale.scaling.points import Curve

STEPS = (0, 100, 200, 400, 800, 1600)
CATEGORIES = ("colors", "counting")
INTERVAL = re.compile(r"(\d+\.\d{3}) \[(\d+\.\d{3}), (\d+\.\d{3})\]")


def run_curve(
    params: float,
    seed: int,
    a: float = 0.1,
    b: float = 0.05,
    noise: float = 0.05,
    pairs: int | None = None,
    prompts: int = 6,
    eval_seeds: int = 2,
) -> Curve:
    """One run whose per-image scores scatter around S = a·C^b·(D / 1e6)^0.05 (C = 6·params·images; no D
    factor without `pairs`), clipped to [0, 1]."""
    rng = np.random.default_rng([int(params), seed, pairs or 0])
    images = [256 * step for step in STEPS]
    flops = [6.0 * params * n for n in images]
    prompt_ids = tuple(f"p{p:02d}" for p in range(prompts) for _ in range(eval_seeds))
    seeds = tuple(s for _ in range(prompts) for s in range(eval_seeds))
    categories = tuple(CATEGORIES[p % 2] for p in range(prompts) for _ in range(eval_seeds))
    samples, values, category = [], [], {name: [] for name in CATEGORIES}
    for c in flops:
        centre = a * max(c, 1.0) ** b * (1.0 if pairs is None else (pairs / 1e6) ** 0.05)
        scores = np.clip(centre + noise * rng.standard_normal(len(prompt_ids)), 0.0, 1.0)
        entry = SampleScores(prompt_ids, seeds, scores, categories)
        samples.append(entry)
        values.append(entry.mean)
        for name in CATEGORIES:
            category[name].append(entry.only_category(name).mean)
    run_id = f"n{params:.0e}-s{seed}" + ("" if pairs is None else f"-d{pairs:.0e}")
    return Curve(
        run_id=run_id,
        label=run_id,
        params=int(params),
        gmacs=params / 1e6,
        dataset_noun_pairs=pairs,
        steps=STEPS,
        images_seen=images,
        train_flops=flops,
        values=values,
        category=category,
        samples=samples,
    )


def configurations(sizes=(1e6, 4e6, 16e6, 64e6), seeds=(0, 1), pairs=(None,), **law) -> list[Configuration]:
    """One configuration per size and dataset size, each the runs of `seeds`."""
    found = []
    for params in sizes:
        for d in pairs:
            key = f"N{params:.0e}" + ("" if d is None else f" D{d:.0e}")
            runs = tuple(run_curve(params, seed, pairs=d, **law) for seed in seeds)
            found.append(Configuration(key, key, runs))
    return found


def study_data(configs: list[Configuration], tmp_path) -> StudyData:
    """The report's view of a study that consists of these configurations."""
    curves = [run for c in configs for run in c.runs]
    return StudyData(
        study_dir=tmp_path,
        metric="tifa",
        metrics=["tifa"],
        runs=[],
        curves=curves,
        curves_by_metric={"tifa": curves},
        chance_level=0.25,
        configurations=configs,
    )


def sections(data: StudyData, tmp_path) -> tuple[Analyses, ReportOptions]:
    return Analyses(data, tmp_path), ReportOptions(tmp_path, sample_columns=4)


def visible(markup: str) -> str:
    """The text of an HTML fragment, entities decoded."""
    from html import unescape

    return unescape(re.sub(r"<[^>]+>", " ", markup))


def test_law_text_gives_every_interval_the_method_and_the_counts():
    law = frontier_law(configurations(), "compute", "tifa")
    assert law.reason is None and law.fit is not None
    fit = law.fit
    assert fit.params["b"] == pytest.approx(0.05, abs=0.02)
    text = visible(law_html(law))
    assert text.count("95% CI [") == len(fit.param_names) == 2
    for name in fit.param_names:
        assert f"{name} = {fit.params[name]:.4g}, {fmt.interval(fit.interval(name), 0.95)}" in text
    assert f"Intervals: {fit.method}." in text and "t interval" in fit.method
    assert f"on {len(law.frontier)} Pareto-frontier points of {fit.n_clusters} configurations" in text
    assert fit.n_clusters == 4
    assert "bootstrap" not in text.lower()
    # values around 0.35: the band stays inside [0, 1] and the text does not claim a clipping
    assert not law.band().clipped and "band is clipped" not in text


def test_law_text_says_when_the_band_was_clipped_to_the_metric_range():
    law = frontier_law(configurations(a=0.9, b=0.004, noise=0.03), "compute", "tifa")
    assert law.fit is not None and law.band().clipped
    band = law.band()
    assert band.hi.max() <= 1.0
    text = visible(law_html(law))
    assert "The law's 95% band is clipped to TIFA's range [0, 1]." in text
    assert plots.band_label(0.95, True) == "95% interval of the law (clipped to the metric's range)"
    assert plots.band_label(0.95, False) == "95% interval of the law"


def test_law_points_carry_their_interval_and_seeds():
    law = frontier_law(configurations(), "compute", "tifa")
    text = visible(law_html(law))
    for point in law.frontier:
        estimate = law.estimates[(point.run_id, point.step)]
        assert estimate is not None and estimate.n_seeds == (2,)
        assert estimate.lo <= point.value <= estimate.hi
        assert fmt.estimate(estimate) in text


def test_a_law_that_cannot_be_fitted_is_a_sentence():
    law = frontier_law(configurations(sizes=(1e6, 4e6)), "compute", "tifa")
    assert law.fit is None
    text = visible(law_html(law))
    assert text.lstrip().startswith("Cannot fit the power law on")
    assert "at least 3 runs, got 2" in text
    # the frontier points are still listed with their intervals
    assert len(INTERVAL.findall(text)) == len(law.frontier) > 0


def test_compute_and_data_sections_from_configurations(tmp_path):
    configs = configurations(sizes=(1e6, 4e6), pairs=(10_000, 100_000, 1_000_000))
    analyses, options = sections(study_data(configs, tmp_path), tmp_path)
    compute = visible(compute_section(analyses, options).body)
    assert "of every evaluation of every configuration" in compute
    section = data_section(analyses, options)
    text = visible(section.body)
    assert "data_scaling.svg" in section.body and (tmp_path / "data_scaling.svg").is_file()
    law = frontier_law(configs, "data", "tifa")
    assert law.fit is not None and law.fit.params["b"] > 0
    assert f"S = {law.fit.params['a']:.4g}·D^{law.fit.params['b']:.4g}" in text
    assert f"Intervals: {law.fit.method}." in text
    assert f"of {law.fit.n_clusters} configurations" in text
    assert "bootstrap" not in (compute + text).lower()


def test_one_dataset_size_is_a_sentence(tmp_path):
    data = study_data(configurations(pairs=(1_000_000,)), tmp_path)
    text = visible(data_section(*sections(data, tmp_path)).body)
    assert (
        text.strip()
        == "No data scaling: the evaluated runs all have D = 1,000,000 (training-set image-noun pairs)."
    )


def test_correlation_table_says_how_p_was_computed_and_the_seeds(tmp_path):
    configs = configurations()
    configs[1] = Configuration("three", "three", (*configs[1].runs, run_curve(4e6, 2)))
    correlations, reason = size_correlations([c.as_curve() for c in configs])
    assert reason is None
    rows = correlation_rows(correlations)
    spearman = next(row for row in rows if row[:2] == ["params", "spearman"])
    assert spearman[2] == "+1.0000"
    assert spearman[4] == "exact permutation test over 24 orderings"
    assert spearman[5] == "4" and spearman[6] == "3 (×1), 2 (×3)"
    assert spearman[3] == f"{2 / 24:.3g}"  # a perfect ranking of 4: 2 of 24 orderings reach |ρ| = 1
    body = size_section(*sections(study_data(configs, tmp_path), tmp_path)).body
    for header in ("p computed by", "seeds per configuration"):
        assert f"<th>{header}</th>" in body
    assert (
        size_correlations([c.as_curve() for c in configs[:2]])[1]
        == "No correlations: correlations need at least 3 runs, got 2."
    )


def test_intro_says_how_many_seeds_each_configuration_pools():
    configs = configurations(sizes=(1e6, 4e6, 16e6))
    configs[0] = Configuration("one", "one", configs[0].runs[:1])
    text = configurations_text(configs, "tifa")
    assert "3 configurations" in text and "seeds per configuration: 2 (×2), 1 (×1)" in text
    assert "averaged into one configuration" in text
    single = configurations_text([Configuration("one", "one", configs[1].runs[:1])], "tifa")
    assert "seeds per configuration: 1" in single and "prompts and eval seeds only" in single


def test_final_and_category_values_carry_their_interval():
    curve = run_curve(4e6, 0)
    shown = final_value(curve)
    assert shown.estimate is not None
    expected = replicate_estimate([curve.samples[-1]], value_range=(0.0, 1.0))
    assert shown.text() == expected.text() and shown.value == pytest.approx(curve.final_value)
    value, lo, hi = map(float, INTERVAL.fullmatch(shown.text()).groups())
    assert lo < value < hi
    per_category = category_values(curve, [*CATEGORIES, "position"])
    for name in CATEGORIES:
        estimate = per_category[name].estimate
        assert estimate is not None and estimate.n_prompts == 3
        assert estimate.value == pytest.approx(curve.category[name][-1])
        assert estimate.lo <= estimate.value <= estimate.hi
    assert per_category["position"].text() == fmt.MISSING  # a category this run lacks


def test_values_without_samples_or_of_set_statistics_print_without_interval():
    curve = run_curve(4e6, 0)
    old = Curve(**{**curve.__dict__, "samples": None})  # a study evaluated before samples were kept
    assert final_value(old).estimate is None and final_value(old).text() == f"{curve.final_value:.3f}"
    assert "before per-image scores were kept" in final_value(old).why_no_interval
    fid = sample_value(12.3456, None, "fid")
    assert fid.text() == "12.346" and "set statistic" in fid.why_no_interval
    one_prompt = SampleScores(("p0", "p0"), (0, 1), np.array([0.5, 0.7]))
    shown = sample_value(0.6, one_prompt, "tifa")
    assert shown.estimate is None and "at least 2 prompts" in shown.why_no_interval


def test_figures_are_svg_with_legible_text(tmp_path):
    configs = configurations(sizes=(1e6, 4e6, 16e6), pairs=(1_000_000, 10_000_000))
    analyses, options = sections(study_data(configs, tmp_path), tmp_path)
    for build in (compute_section, size_section, data_section):
        build(analyses, options)
    for name in ("compute_frontier.svg", "size_correlation.svg", "data_scaling.svg"):
        svg = (tmp_path / name).read_text()
        assert svg.startswith("<?xml") and "<svg" in svg
        width = float(re.search(r'<svg[^>]* width="([0-9.]+)pt"', svg).group(1))
        assert 400 < width < 560, (
            name,
            width,
        )  # 530-750 CSS px: shown at natural size, 10 pt text stays legible
    assert plots.STYLE["font.size"] >= 10 and plots.STYLE["xtick.labelsize"] >= 9


def test_log_axes_are_labelled_at_powers_of_ten_only():
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    for low, high in ((6.8e11, 5.0e12), (1.1e5, 9.0e5), (3.3e-3, 2.7e-2), (2e8, 5e12), (4e12, 5e12)):
        lo, hi = plots.decade_limits(low, high)
        assert lo < low and hi > high
        figure = Figure()
        ax = figure.add_subplot()
        ax.plot([low, high], [0, 1])
        plots.log_axis(ax, "x", [low, high])
        figure.canvas.draw()
        ticks = [t for t in ax.xaxis.get_majorticklocs() if lo <= t <= hi]
        assert len(ticks) >= 2, (low, high, ticks)
        assert all(abs(np.log10(t) - round(np.log10(t))) < 1e-9 for t in ticks)  # 10^k
        labels = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
        assert all("10^" in label for label in labels), labels
        assert isinstance(ax.xaxis.get_minor_formatter(), NullFormatter)  # one label per tick, never two


def test_law_band_is_cut_at_the_axes():
    from matplotlib.figure import Figure

    law = frontier_law(configurations(), "compute", "tifa")
    assert law.fit is not None
    band = law.band()
    middle = float(np.median(band.value))
    limits = (middle - 0.01, middle + 0.01)  # narrower than the band: it must be cut there
    assert plots.band_is_cut(band, limits)
    assert not plots.band_is_cut(band, (-10.0, 10.0))
    figure = Figure()
    ax = figure.add_subplot()
    plots._draw_band(ax, band, limits, "band")
    (polygon,) = ax.collections
    ys = np.concatenate([path.vertices[:, 1] for path in polygon.get_paths()])
    assert ys.min() >= limits[0] - 1e-12 and ys.max() <= limits[1] + 1e-12


def test_metric_limits_hold_floor_ceiling_and_stay_in_range():
    refs = plots.References(chance=0.46, ceiling=0.99, value_range=(0.0, 1.0))
    low, high = plots.metric_limits([0.55, 0.62, 0.7], refs)
    assert low < 0.46 and 0.99 < high <= 1.02
    low, high = plots.metric_limits(
        [-5.0, 7.0], refs
    )  # a huge interval end cannot stretch the axis past the range
    assert low >= -0.02 and high <= 1.02


def test_short_tick_labels():
    assert plots.short_number(0.09) == "0.09"
    assert plots.short_number(250) == "250"
    assert plots.short_number(1.5e9) == "1.5e9"
    assert plots.short_number(3e-5) == "3e-5"

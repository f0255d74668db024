"""`build_report`: a study folder -> `report.html` with its PNGs beside it.

Sections follow the paper's analyses (Li et al., CVPR 2024): alignment along training (Sec. 4), scaling with
compute on the Pareto frontier (Sec. 6), parameters vs GMACs (Fig. 10), data scaling (Sec. 5-6), GenEval-style
categories, and side-by-side samples. A partial study renders with what exists: runs without evaluations are
in the table only, and an analysis the results cannot support says why in a sentence.

Statistics (DESIGN.md, "Findings and statistics"): a per-image metric value is printed with its 95% interval
(`t2iscale.eval.intervals`), and the level, n and what the interval covers are stated beside it. The laws and
correlations use configurations, a study's runs pooled over training seeds (`t2iscale.findings`): the compute
and data laws come from `t2iscale.findings.laws.frontier_law`, with t intervals for every parameter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.eval.intervals import DEFAULT_LEVEL, Estimate, replicate_estimate
from t2iscale.eval.metrics import metric_info
from t2iscale.eval.samples import SampleScores
from t2iscale.findings.laws import LawResult, frontier_law
from t2iscale.progress import progress_bar
from t2iscale.report import fmt, html, plots
from t2iscale.report.collect import StudyData, collect_study
from t2iscale.report.samples import collect_samples
from t2iscale.scaling.arms import Configuration
from t2iscale.scaling.correlation import Correlation, final_value_correlations
from t2iscale.scaling.points import AXES, Curve
from t2iscale.scaling.published import PUBLISHED_LAWS

REPORT_NAME = "report.html"
LEVEL = DEFAULT_LEVEL  # of every interval on the page


@dataclass(frozen=True)
class ReportOptions:
    out_dir: Path  # where the page and its PNGs go
    sample_columns: int  # prompts shown per run in the sample grid


def default_out(study_dir: str | Path) -> Path:
    return Path(study_dir) / "report" / REPORT_NAME


def build_report(
    study_dir: str | Path,
    out: str | Path | None = None,
    metric: str = "tifa",
    sample_columns: int = 8,
    progress: bool = True,
) -> Path:
    """Write the study's report to `out` (default `<study>/report/report.html`) and return its path."""
    out = Path(out) if out is not None else default_out(study_dir)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"report file {str(out)!r}: expected a name ending in .html")
    if sample_columns < 1:
        raise UserError(f"sample_columns must be >= 1, got {sample_columns}")
    data = collect_study(study_dir, metric)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = ReportOptions(out.parent, sample_columns)

    builders = (
        runs_section,
        training_section,
        compute_section,
        size_section,
        data_section,
        category_section,
        samples_section,
    )
    sections = [
        build(data, options)
        for build in progress_bar(builders, enabled=progress, desc="report", unit="section")
    ]
    title = f"Scaling study report: {data.study_dir.resolve().name}"
    out.write_text(html.page(title, intro(data), sections), encoding="utf-8")
    return out


def intro(data: StudyData) -> str:
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(data.status_counts().items()))
    return (
        html.paragraph(
            f"Study {data.study_dir.resolve()}: {len(data.runs)} runs ({statuses}); "
            f"{len(data.curves)} evaluated on {data.metric}. Metrics in the study: {', '.join(data.metrics)}."
        )
        + html.paragraph(configurations_text(data.configurations, data.metric))
        + html.paragraph(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by t2iscale report.")
    )


def configurations_text(configurations: Sequence[Configuration], metric: str) -> str:
    """How the laws and correlations pool runs: the configurations and their training seeds."""
    seeds = [c.n_seeds for c in configurations]
    pooled = (
        "runs that differ only in the training seed are averaged into one configuration, and its intervals "
        "cover the training seeds too"
        if max(seeds, default=1) > 1
        else "each has one training seed, so every interval covers the evaluation prompts and eval seeds only"
    )
    return (
        f"The scaling laws and correlations use {len(configurations)} configurations evaluated on {metric}, "
        f"seeds per configuration: {fmt.seeds(seeds)} ({pooled})."
    )


def _png(options: ReportOptions, name: str) -> Path:
    return options.out_dir / name


# -- values with intervals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownValue:
    """A metric value as a table shows it: with its interval, or with the reason it has none."""

    value: float | None
    estimate: Estimate | None = None
    why_no_interval: str | None = None  # None with an estimate, or when there is no value

    def text(self) -> str:
        return fmt.estimate(self.estimate) if self.estimate is not None else fmt.metric_value(self.value)


def sample_value(value: float, samples: SampleScores | None, metric: str, level: float = LEVEL) -> ShownValue:
    """`value` of one evaluation with its interval over prompts (and eval seeds) from its per-image scores."""
    info = metric_info(metric)
    if not info.per_sample:
        return ShownValue(
            value, why_no_interval=f"{info.title} is a set statistic over all of an evaluation's images"
        )
    if samples is None:
        return ShownValue(value, why_no_interval="evaluated before per-image scores were kept")
    try:
        estimate = replicate_estimate([samples], level, info.value_range)
    except UserError as error:
        return ShownValue(value, why_no_interval=str(error))
    return ShownValue(estimate.value, estimate)


def final_value(curve: Curve | None, level: float = LEVEL) -> ShownValue:
    """A run's final evaluation with its interval (within its one training seed)."""
    if curve is None:
        return ShownValue(None)
    last = len(curve.steps) - 1
    return sample_value(curve.final_value, curve.samples_at(last), curve.metric, level)


def category_values(curve: Curve, categories: Sequence[str], level: float = LEVEL) -> dict[str, ShownValue]:
    """Each category's final value with its interval over that category's prompts."""
    samples = curve.samples_at(len(curve.steps) - 1)
    shown = {}
    for name in categories:
        if name not in curve.category:
            shown[name] = ShownValue(None)
            continue
        try:
            subset = None if samples is None else samples.only_category(name)
        except UserError as error:
            shown[name] = ShownValue(curve.category[name][-1], why_no_interval=str(error))
            continue
        shown[name] = sample_value(curve.category[name][-1], subset, curve.metric, level)
    return shown


def configuration_estimate(configuration: Configuration, metric: str) -> Estimate | None:
    """A configuration's final value with its interval over training seeds and prompts (None without one)."""
    try:
        return configuration.estimate(configuration.final_step, LEVEL, metric_info(metric).value_range)
    except UserError:
        return None


def _n_text(estimates: Sequence[Estimate]) -> str:
    """'n = 6 prompts, 6 images per evaluation' (ranges when the evaluations differ)."""

    def span(values: set[int]) -> str:
        return str(min(values)) if len(values) == 1 else f"{min(values)}–{max(values)}"

    prompts = span({e.n_prompts for e in estimates})
    images = span({e.n_samples for e in estimates})
    return f"n = {prompts} prompts, {images} images per evaluation"


def intervals_note(shown: Sequence[ShownValue], what: str, metric: str) -> str:
    """The sentence under a table of values: level, method, n, clipping, and why some values have none."""
    info = metric_info(metric)
    estimates = [s.estimate for s in shown if s.estimate is not None]
    sentences = []
    if estimates:
        level = estimates[0].level
        seeds = (
            "over the evaluation prompts and eval seeds of that evaluation, within the run's one training seed "
            "(it does not cover the spread between training seeds)"
        )
        sentences.append(
            f"{what} of {info.title} are shown as value [lo, hi], the {level:.0%} t interval {seeds}; "
            f"{_n_text(estimates)}."
        )
        clipped = sum(e.clipped for e in estimates)
        if clipped:
            sentences.append(
                f"{clipped} of these intervals are clipped to {info.title}'s range {info.range_text()}."
            )
    reasons = sorted({s.why_no_interval for s in shown if s.why_no_interval})
    if reasons:
        sentences.append(f"{what} of {info.title} without an interval: " + "; ".join(reasons) + ".")
    return " ".join(sentences)


# -- sections -------------------------------------------------------------------------------------------------


def runs_section(data: StudyData, options: ReportOptions) -> html.Section:
    headers = [
        "run",
        "backbone",
        "params",
        "GMACs",
        "data size",
        "noun pairs",
        "captions",
        "seed",
        "status",
        "images/s",
        "elapsed",
        "last eval step",
    ] + [f"final {m}" for m in data.metrics]
    curves = {(c.metric, c.run_id): c for curves in data.curves_by_metric.values() for c in curves}
    rows, shown = [], {m: [] for m in data.metrics}
    for run in data.runs:
        last_step = data.last_evaluated_step(run.run_id)
        finals = []
        for m in data.metrics:
            value = final_value(curves.get((m, run.run_id)))
            shown[m].append(value)
            finals.append(value.text())
        rows.append(
            [
                run.run_id,
                run.backbone,
                fmt.count(run.params),
                fmt.number(run.gmacs),
                fmt.count(run.dataset_size),
                fmt.count(run.dataset_noun_pairs),
                run.caption_policy,
                str(run.seed),
                run.status,
                fmt.number(run.images_per_s),
                fmt.duration(run.elapsed_s),
                fmt.MISSING if last_step is None else str(last_step),
            ]
            + finals
        )
    numeric = [False, False, True, True, True, True, False, True, False, True, True, True]
    body = html.table(headers, rows, numeric + [True] * len(data.metrics))
    body += html.paragraph(
        "Ordered by parameters. Final values are at each run's last evaluated step; a run still training "
        "or stopped early is compared at the step it reached."
    )
    for m in data.metrics:
        note = intervals_note(shown[m], "Final values", m)
        if note:
            body += html.paragraph(note)
    return html.Section("runs", "Runs", body)


def training_section(data: StudyData, options: ReportOptions) -> html.Section:
    colors = plots.run_colors(data.curves)
    chance = data.chance_level
    steps_png = plots.alignment_curves(
        data.curves, colors, "steps", data.metric, chance, _png(options, "alignment_vs_steps.png")
    )
    flops_png = plots.alignment_curves(
        data.curves, colors, "train_flops", data.metric, chance, _png(options, "alignment_vs_flops.png")
    )
    chance_text = "" if chance is None else f" The dashed line is the chance level ({chance:.3f})."
    body = html.figure(
        steps_png.name,
        f"{data.metric} vs training step",
        f"{data.metric} along training, per run (color: size, small = dark).{chance_text}",
    ) + html.figure(
        flops_png.name,
        f"{data.metric} vs training FLOPs",
        f"{data.metric} against training compute C = 3 × forward FLOPs × images seen (log scale).{chance_text}",
    )
    return html.Section("training", "Alignment along training", body)


def _fit_caption(law: LawResult) -> str:
    if law.fit is None:
        return "; no law could be fitted (see below)."
    band = law.band()
    clipped = (
        f", clipped to {metric_info(law.metric).title}'s range" if band is not None and band.clipped else ""
    )
    return (
        f", with S = a·{law.axis.symbol}^b fitted on the frontier and its {law.fit.ci_level:.0%} interval "
        f"(a band{clipped}), drawn over the X range it was fitted on. Error bars: each frontier point's "
        f"{LEVEL:.0%} interval."
    )


def _reason(law: LawResult) -> str:
    reason = (law.reason or "No fit.").rstrip(".") + "."
    # frontier_law's fit failures name the law and its points ("power law on 3 Pareto-frontier points ...")
    return f"Cannot fit the {reason}" if law.frontier else reason


def law_html(law: LawResult) -> str:
    """The fitted law with every parameter's interval, how the intervals were made, the number of points and
    of configurations, and the points with their own intervals; or the reason there is no law."""
    info = metric_info(law.metric)
    if law.fit is None:
        return html.note(_reason(law)) + law_points_html(law)
    fit, symbol = law.fit, law.axis.symbol
    lines = [html.law(fit.render(symbol))]
    lines.append(
        html.items(
            [
                f"{name} = {fit.params[name]:.4g}, {fmt.interval(fit.interval(name), fit.ci_level)}"
                for name in fit.param_names
            ]
        )
    )
    band = law.band()
    clipped = (
        f" The law's {fit.ci_level:.0%} band is clipped to {info.title}'s range {info.range_text()}."
        if band is not None and band.clipped
        else ""
    )
    lines.append(
        html.paragraph(
            f"Fitted by least squares on log S against log {symbol}, on {len(law.frontier)} Pareto-frontier "
            f"points of {fit.n_clusters} configurations ({len(law.candidates)} candidate points); "
            f"R² = {fmt.number(fit.r2)}, RMSE = {fit.rmse:.4g}. Intervals: {fit.method}.{clipped}"
        )
    )
    return "".join(lines) + law_points_html(law) + _published_text(law.axis.name, law.metric)


def law_points_html(law: LawResult) -> str:
    """The frontier points, each a configuration's mean over its training seeds, with their intervals."""
    if not law.frontier:
        return ""
    rows, missing, clipped = [], 0, 0
    for point in law.frontier:
        estimate = law.estimates.get((point.run_id, point.step))
        missing += estimate is None
        clipped += estimate is not None and estimate.clipped
        rows.append(
            [
                point.label,
                str(point.step),
                plots.short_number(point.x),
                str(law.n_seeds.get(point.run_id, 1)),
                fmt.metric_value(point.value) if estimate is None else fmt.estimate(estimate),
            ]
        )
    table = html.table(
        ["configuration", "step", law.axis.symbol, "seeds", f"{law.metric} [{LEVEL:.0%} interval]"],
        rows,
        [False, True, True, True, True],
    )
    note = (
        f"Each point is a configuration's value at that step, the mean over its training seeds, with its "
        f"{LEVEL:.0%} interval (over the evaluation prompts, and over training seeds where there are two or more)."
    )
    if clipped:
        info = metric_info(law.metric)
        note += f" {clipped} of these intervals are clipped to {info.title}'s range {info.range_text()}."
    if missing:
        note += f" {missing} point(s) have no interval: their evaluations kept no per-image scores."
    return table + html.paragraph(note)


def _published_text(axis: str, metric: str) -> str:
    published = PUBLISHED_LAWS.get(axis)
    if published is None or metric != "tifa":
        return ""
    symbol = AXES[axis].symbol
    return html.paragraph(
        f"For reference, the paper fits S = {published.a:g}·{symbol}^{published.b:g} to TIFA of its models "
        f"(Sec. 6), with {symbol} in {published.x_unit}; compare exponents, since a depends on that unit "
        "and on the data."
    )


def _law_figure(data: StudyData, law: LawResult, path: Path) -> Path:
    curves = data.configuration_curves
    return plots.frontier_law(
        law,
        {c.run_id: c.label for c in curves},
        plots.run_colors(curves),
        data.metric,
        data.chance_level,
        path,
    )


def compute_section(data: StudyData, options: ReportOptions) -> html.Section:
    law = frontier_law(data.configurations, "compute", data.metric)
    body = ""
    if law.candidates:
        png = _law_figure(data, law, _png(options, "compute_frontier.png"))
        body += html.figure(
            png.name,
            f"{data.metric} vs training FLOPs with Pareto frontier and fitted law",
            "Every evaluation of every configuration (colored by configuration; the mean over its training "
            "seeds) and the Pareto frontier (black rings: the best value reached with at most that much "
            "compute)" + _fit_caption(law),
        )
    body += law_html(law)
    return html.Section("compute", "Scaling with training compute", body)


def size_correlations(curves: Sequence[Curve]) -> tuple[list[Correlation], str | None]:
    """Correlations of the configurations' final values with parameters and GMACs, or why there are none."""
    try:
        return final_value_correlations(curves), None
    except UserError as error:
        return [], f"No correlations: {error}."


def correlation_rows(correlations: Sequence[Correlation]) -> list[list[str]]:
    return [
        [
            r.predictor,
            r.method + (" (log size)" if r.log_predictor else ""),
            f"{r.coefficient:+.4f}",
            f"{r.p_value:.3g}",
            r.p_method,
            str(r.n_runs),
            fmt.seeds(r.n_seeds),
        ]
        for r in correlations
    ]


def size_section(data: StudyData, options: ReportOptions) -> html.Section:
    curves = data.configuration_curves
    correlations, reason = size_correlations(curves)
    estimates = {c.key: configuration_estimate(c, data.metric) for c in data.configurations}
    png = plots.size_scatter(
        curves,
        plots.run_colors(curves),
        data.metric,
        data.chance_level,
        correlations,
        estimates,
        _png(options, "size_correlation.png"),
    )
    body = html.figure(
        png.name,
        f"final {data.metric} vs parameters and vs GMACs",
        f"Final {data.metric} of each configuration (the mean over its training seeds, with its "
        f"{LEVEL:.0%} interval) against its parameters (left) and its inference GMACs (right). "
        "The paper (Fig. 10) finds GMACs the better predictor.",
    )
    if reason:
        body += html.note(reason)
    else:
        body += html.table(
            [
                "predictor",
                "correlation",
                "coefficient",
                "p-value",
                "p computed by",
                "configurations",
                "seeds per configuration",
            ],
            correlation_rows(correlations),
            [False, False, True, True, False, True, True],
        )
        body += html.paragraph(
            "One point per configuration, its final value averaged over its training seeds; p is two-sided."
        )
    return html.Section("size", "Parameters vs GMACs", body)


def data_section(data: StudyData, options: ReportOptions) -> html.Section:
    law = frontier_law(data.configurations, "data", data.metric)
    if len({p.x for p in law.candidates}) < 2:
        return html.Section("data", "Data scaling", html.note(_reason(law)))
    png = _law_figure(data, law, _png(options, "data_scaling.png"))
    body = html.figure(
        png.name,
        f"final {data.metric} vs training-set image-noun pairs",
        f"Final {data.metric} of each configuration (the mean over its training seeds) against its training "
        "set's image-noun pairs D and the Pareto frontier (black rings: the best value reached with at most "
        "that much data)" + _fit_caption(law),
    )
    body += law_html(law)
    return html.Section("data", "Data scaling", body)


def category_section(data: StudyData, options: ReportOptions) -> html.Section:
    categories = sorted({name for curve in data.curves for name in curve.category})
    if not categories:
        return html.Section(
            "categories",
            "Per-category alignment",
            html.note(f"The {data.metric} results have no per-category breakdown."),
        )
    per_run = {curve.run_id: category_values(curve, categories) for curve in data.curves}
    overall = {curve.run_id: final_value(curve) for curve in data.curves}
    png = plots.category_bars(
        data.curves,
        plots.run_colors(data.curves),
        categories,
        data.metric,
        {run_id: {n: v.estimate for n, v in values.items()} for run_id, values in per_run.items()},
        _png(options, "categories.png"),
    )
    body = html.figure(
        png.name,
        f"final {data.metric} per category and run",
        f"Final {data.metric} per prompt category (GenEval's categories in the shapes world), one bar per run, "
        f"with its {LEVEL:.0%} interval where the category has the prompts for one (see the table).",
    )
    rows = [
        [curve.run_id, overall[curve.run_id].text()]
        + [per_run[curve.run_id][name].text() for name in categories]
        for curve in data.curves
    ]
    body += html.table(["run", "overall", *categories], rows, [False] + [True] * (len(categories) + 1))
    category_shown = [v for values in per_run.values() for v in values.values() if v.value is not None]
    for shown, what in (
        (list(overall.values()), "Overall final values"),
        (category_shown, "Per-category final values"),
    ):
        note = intervals_note(shown, what, data.metric)
        if note:
            body += html.paragraph(note)
    return html.Section("categories", "Per-category alignment", body)


def samples_section(data: StudyData, options: ReportOptions) -> html.Section:
    grid = collect_samples(data, max_columns=options.sample_columns)
    body = ""
    if grid.image is not None:
        png = plots.sample_grid(grid, _png(options, "samples.png"))
        body += html.figure(
            png.name,
            "sample grid: rows are runs, columns are prompts",
            "Rows: runs ordered by parameters, each at its last evaluated step. Columns: the same prompts "
            f"and seed (seed {grid.columns[0].seed}) for every run, listed below.",
        )
        body += html.items(
            [f"{c.caption} ({c.prompt_id}, seed {c.seed})" for c in grid.columns], ordered=True
        )
    else:
        body += html.note("No sample images to show.")
    for text in grid.notes:
        body += html.note(text)
    return html.Section("samples", "Samples", body)

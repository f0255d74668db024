"""`build_report`: a study folder -> `report.html` with its figures beside it.

The page reads top to bottom as a researcher asks (DESIGN.md "Results"):
1. the headline: the study's question and its answers (laws with exponent intervals, the factors' verdicts beside
   the paper's directions, the best model with its interval, the study's bars, the metric's floor and ceiling);
2. findings: one panel per compared factor (`t2iscale compare`);
3. the paper's panels (Li et al., CVPR 2024): alignment vs training compute on the Pareto frontier (Sec. 6),
   vs parameters and GMACs (Fig. 10), vs data (Sec. 5-6), along training with loss and learning rate, training
   speed, GenEval-style categories with their chance lines;
4. the runs table, the sample grid with its prompts, and provenance.

A partial study renders with what exists: runs without evaluations are in the table only, and an analysis the
results cannot support says why in a sentence.

Statistics (DESIGN.md, "Findings and statistics"): a per-image metric value is printed with its 95% interval
(`t2iscale.eval.intervals`), and the level, n and what the interval covers are stated beside it. Laws,
correlations and comparisons use configurations, a study's runs pooled over training seeds (`t2iscale.findings`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from t2iscale.errors import UserError
from t2iscale.eval.intervals import Estimate, replicate_estimate
from t2iscale.eval.metrics import metric_info
from t2iscale.eval.samples import SampleScores
from t2iscale.file_modes import require_writable_file
from t2iscale.findings.laws import LawResult
from t2iscale.progress import progress_bar
from t2iscale.report import fmt, html, plots
from t2iscale.report.analyses import LEVEL, Analyses
from t2iscale.report.collect import StudyData, collect_study
from t2iscale.report.reference import ground_truth_images
from t2iscale.report.samples import collect_samples, enlarge
from t2iscale.scaling.arms import Configuration
from t2iscale.scaling.correlation import Correlation, final_value_correlations
from t2iscale.scaling.points import AXES, Curve
from t2iscale.scaling.published import PUBLISHED_LAWS

REPORT_NAME = "report.html"
FIGURE_FORMAT = ".svg"
SAMPLES_DIR = "samples"
SPARSE_EVALUATIONS = 3  # a run evaluated this many times or fewer has a curve of few points: the page says so


@dataclass(frozen=True)
class ReportOptions:
    out_dir: Path  # where the page and its figures go
    sample_columns: int = 8  # prompts shown per run in the sample grid
    command: str | None = None  # the command that built the report, for provenance


def default_out(study_dir: str | Path) -> Path:
    return Path(study_dir) / "report" / REPORT_NAME


def build_report(
    study_dir: str | Path,
    out: str | Path | None = None,
    metric: str = "tifa",
    sample_columns: int = 8,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Write the study's report to `out` (default `<study>/report/report.html`) and return its path."""
    from t2iscale.report.audit import audit_section
    from t2iscale.report.comparisons import findings_section
    from t2iscale.report.elements import element_type_section
    from t2iscale.report.headline import headline_section
    from t2iscale.report.provenance import provenance_section

    out = Path(out) if out is not None else default_out(study_dir)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"report file {str(out)!r}: expected a name ending in .html")
    if sample_columns < 1:
        raise UserError(f"sample_columns must be >= 1, got {sample_columns}")
    require_writable_file(out, "the report", "--out")  # before the study is read, not after the figures
    data = collect_study(study_dir, metric)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = ReportOptions(out.parent, sample_columns, command)
    analyses = Analyses(data, out.parent)

    builders = (
        headline_section,
        findings_section,
        compute_section,
        size_section,
        data_section,
        training_section,
        speed_section,
        category_section,
        element_type_section,  # None (left out) unless the metric is TIFA with element types
        audit_section,  # None (left out) when the study holds no judge audit
        runs_section,
        samples_section,
        provenance_section,
    )
    built = [
        section
        for build in progress_bar(builders, enabled=progress, desc="report", unit="section")
        if (section := build(analyses, options)) is not None
    ]
    title = f"Scaling study report: {data.name}"
    out.write_text(html.page(title, built[0], built[1:]), encoding="utf-8")
    return out


def configurations_text(configurations: Sequence[Configuration], metric: str, scoped: bool = False) -> str:
    """How the laws, correlations and comparisons pool runs: the configurations and their training seeds;
    `scoped`: some law is fitted on part of them (`law_scope`)."""
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
        + (
            " The study varies several grid axes, so each law and the correlations use the configurations that "
            "differ only along the law's axis (stated with each law)."
            if scoped
            else ""
        )
    )


def figure_path(options: ReportOptions, name: str) -> Path:
    return options.out_dir / f"{name}{FIGURE_FORMAT}"


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
    """Each category's final value of one run with its interval over that category's prompts."""
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


def configuration_value(
    analyses: Analyses, configuration: Configuration, category: str | None = None
) -> ShownValue:
    """A configuration's final value (overall or of one category), the mean over its training seeds, with its
    interval over prompts and seeds."""
    curve = configuration.as_curve()
    if category is not None and category not in curve.category:
        return ShownValue(None)
    value = curve.final_value if category is None else curve.category[category][-1]
    if not metric_info(curve.metric).per_sample:
        return ShownValue(value, why_no_interval=f"{metric_info(curve.metric).title} is a set statistic")
    try:
        estimate = analyses.estimate(configuration, category=category)
    except UserError as error:
        return ShownValue(value, why_no_interval=str(error))
    if estimate is None:
        return ShownValue(value, why_no_interval="evaluated before per-image scores were kept")
    return ShownValue(estimate.value, estimate)


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


ONE_RUN_COVERS = (
    "over the evaluation prompts and eval seeds of that evaluation, within the run's one training seed "
    "(it does not cover the spread between training seeds)"
)


def intervals_note(shown: Sequence[ShownValue], what: str, metric: str, per_run: bool = True) -> str:
    """The sentence under a table of values: level, method, n, clipping, and why some values have none.
    `per_run`: the values are single runs' (else configurations', whose intervals say what they cover)."""
    info = metric_info(metric)
    estimates = [s.estimate for s in shown if s.estimate is not None]
    sentences = []
    if estimates:
        level = estimates[0].level
        covers = ONE_RUN_COVERS if per_run else "over " + "; ".join(sorted({e.covers for e in estimates}))
        sentences.append(
            f"{what} of {info.title} are shown as value [lo, hi], the {level:.0%} t interval {covers}; "
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


# -- laws -----------------------------------------------------------------------------------------------------


def _reason(law: LawResult) -> str:
    reason = (law.reason or "No fit.").rstrip(".") + "."
    # frontier_law's fit failures name the law and its points ("power law on 3 Pareto-frontier points ...")
    return f"Cannot fit the {reason}" if law.frontier else reason


def _on_frontier(law: LawResult) -> bool:
    return (
        law.axis.name == "compute"
    )  # frontier_law's default: the frontier on compute, every point elsewhere


def exponent_text(law: LawResult) -> str:
    """'S = 0.021·C^0.118, b = 0.118 [−0.099, 0.335] (95% CI, 7 points of 3 configurations)' or the reason."""
    if law.fit is None:
        return _reason(law)
    fit = law.fit
    lo, hi = fit.interval("b")
    points = f"{len(law.frontier)} {'frontier points' if _on_frontier(law) else 'points'}"
    return (
        f"{fit.render(law.axis.symbol)}: exponent b = {fit.params['b']:.3g}, {fit.ci_level:.0%} CI "
        f"[{lo:.3g}, {hi:.3g}] ({points} of {fit.n_clusters} configurations"
        f"{', where ' + law.scope if law.scope else ''})"
    )


def law_html(law: LawResult) -> str:
    """The fitted law with every parameter's interval, how the intervals were made, the number of points and
    of configurations, and the points with their own intervals; or the reason there is no law."""
    info = metric_info(law.metric)
    if law.fit is None:
        return html.note(_reason(law)) + law_points_html(law)
    fit, symbol = law.fit, law.axis.symbol
    lines = [html.law(fit.render(symbol))]
    if law.scope_text():
        text = law.scope_text()
        lines.append(html.note(text[0].upper() + text[1:] + "."))
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
    which = (
        f"{len(law.frontier)} Pareto-frontier points"
        if _on_frontier(law)
        else f"{len(law.frontier)} points (every configuration's final value)"
    )
    lines.append(
        html.paragraph(
            f"Fitted by least squares on log S against log {symbol}, on {which} of {fit.n_clusters} "
            f"configurations ({len(law.candidates)} candidate points); R² = {fmt.number(fit.r2)}, "
            f"RMSE = {fit.rmse:.4g}. Intervals: {fit.method}.{clipped}"
        )
    )
    return "".join(lines) + law_points_html(law) + _published_text(law.axis.name, law.metric)


def law_points_html(law: LawResult) -> str:
    """The points fitted, each a configuration's mean over its training seeds, with their intervals."""
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
    return html.details(
        f"The {len(law.frontier)} points fitted, with their intervals", table + html.paragraph(note)
    )


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


def _candidate_estimates(analyses: Analyses, law: LawResult) -> dict[tuple[str, int], Estimate | None]:
    """Every candidate point's interval (the law carries the fitted points' only)."""
    by_key = {c.key: c for c in analyses.data.configurations}
    found = dict(law.estimates)
    for point in law.candidates:
        if (point.run_id, point.step) in found or point.run_id not in by_key:
            continue
        try:
            found[(point.run_id, point.step)] = analyses.estimate(by_key[point.run_id], point.step)
        except UserError:
            found[(point.run_id, point.step)] = None
    return found


def law_limits(analyses: Analyses, law: LawResult, estimates) -> tuple[float, float]:
    values = [p.value for p in law.candidates]
    values += [e.lo for e in estimates.values() if e is not None] + [e.hi for e in estimates.values() if e]
    return plots.metric_limits(values, analyses.refs)


def law_figure(analyses: Analyses, law: LawResult, options: ReportOptions, name: str) -> tuple[Path, bool]:
    """The law's figure and whether its band is cut at the axes."""
    data = analyses.data
    estimates = _candidate_estimates(analyses, law)
    limits = law_limits(analyses, law, estimates)
    point_labels = {
        c.key: plots.size_label(c.params) if law.axis.name == "compute" else c.label
        for c in data.configurations
    }
    path = plots.law_figure(
        law,
        analyses.colors,
        {c.key: c.label for c in data.configurations},
        point_labels,
        estimates,
        data.metric,
        analyses.refs,
        limits,
        figure_path(options, name),
    )
    return path, plots.band_is_cut(law.band(), limits)


def refs_text(analyses: Analyses) -> str:
    parts = []
    if analyses.refs.chance is not None:
        parts.append(f"the dashed line is chance, the floor ({analyses.refs.chance:.3f})")
    if analyses.refs.ceiling is not None:
        parts.append(
            f"the dotted line the oracle on ground-truth renders, the ceiling ({analyses.refs.ceiling:.3f})"
        )
    return (" " + "; ".join(parts).capitalize() + ".") if parts else ""


def _fit_caption(law: LawResult, cut: bool) -> str:
    if law.fit is None:
        return " No law could be fitted (see below)."
    band = law.band()
    clipped = (
        f", clipped to {metric_info(law.metric).title}'s range" if band is not None and band.clipped else ""
    )
    cut_text = "; the band is cut where it leaves the axes" if cut else ""
    return (
        f" Red: S = a·{law.axis.symbol}^b fitted on the {'frontier' if _on_frontier(law) else 'points'} and its "
        f"{law.fit.ci_level:.0%} interval (the band{clipped}{cut_text}), drawn over the X range it was fitted on."
    )


# -- sections -------------------------------------------------------------------------------------------------


def compute_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data, law = analyses.data, analyses.laws["compute"]
    body = ""
    if law.candidates:
        path, cut = law_figure(analyses, law, options, "compute_frontier")
        body += html.figure(
            path.name,
            f"{data.metric} vs training FLOPs with Pareto frontier and fitted law",
            f"{data.metric} of every evaluation of every configuration against its training compute C = 3 × "
            "forward FLOPs × images seen (log scale; the mean over its training seeds, error bars: its "
            f"{LEVEL:.0%} interval; labels: parameters) and the Pareto frontier (rings: the best value reached "
            "with at most that much compute)." + _fit_caption(law, cut) + refs_text(analyses),
        )
    body += law_html(law)
    return html.Section("compute", f"{analyses.info.title} vs training compute", body)


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


def size_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data, law = analyses.data, analyses.laws["params"]
    curves = data.configuration_curves
    # the correlations, like the law, read only configurations that differ in the backbone alone
    correlations, reason = size_correlations([c.as_curve() for c in analyses.size_configurations])
    estimates = {c.key: configuration_estimate(c, data.metric) for c in data.configurations}
    values = [c.final_value for c in curves]
    values += [e.lo for e in estimates.values() if e] + [e.hi for e in estimates.values() if e]
    limits = plots.metric_limits(values, analyses.refs)
    path = plots.size_figure(
        curves,
        analyses.colors,
        law,
        estimates,
        correlations,
        data.metric,
        analyses.refs,
        limits,
        figure_path(options, "size_correlation"),
    )
    body = html.figure(
        path.name,
        f"final {data.metric} vs parameters and vs GMACs",
        f"Final {data.metric} of each configuration (the mean over its training seeds, with its {LEVEL:.0%} "
        "interval) against its parameters N (left) and its inference GMACs (right). The paper (Fig. 10) finds "
        "GMACs the better predictor."
        + _fit_caption(law, plots.band_is_cut(law.band(), limits))
        + refs_text(analyses),
    )
    body += law_html(law) if law.fit is not None or law.frontier else html.note(_reason(law))
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
        where = f" Configurations where {law.scope} only." if law.scope else ""
        body += html.paragraph(
            "One point per configuration, its final value averaged over its training seeds; p is two-sided."
            + where
        )
    return html.Section("size", f"{analyses.info.title} vs parameters and GMACs", body)


def data_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data, law = analyses.data, analyses.laws["data"]
    if not analyses.varies_data:
        return html.Section("data", "Data scaling", html.note(_reason(law)))
    path, cut = law_figure(analyses, law, options, "data_scaling")
    body = html.figure(
        path.name,
        f"final {data.metric} vs training-set image-noun pairs",
        f"Final {data.metric} of each configuration (the mean over its training seeds) against its training "
        "set's image-noun pairs D." + _fit_caption(law, cut) + refs_text(analyses),
    )
    body += law_html(law)
    return html.Section("data", "Data scaling", body)


def sparse_note(curves: Sequence[Curve]) -> str:
    """A sentence when the runs were evaluated at few steps, so a curve joins few points."""
    counts = sorted({len(curve.steps) for curve in curves})
    if not counts or counts[-1] > SPARSE_EVALUATIONS:
        return ""
    steps = sorted({step for curve in curves for step in curve.steps})
    return (
        f" Evaluations are sparse: each run was evaluated {'/'.join(map(str, counts))} time(s) (steps "
        f"{', '.join(map(str, steps))}), so each curve joins only those points; a smaller eval.every_steps gives "
        "denser curves. The loss curves below are logged far more often."
    )


def training_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data = analyses.data
    colors = {curve.run_id: analyses.run_color(curve.run_id) for curve in data.curves}
    estimates = {
        curve.run_id: [
            sample_value(value, curve.samples_at(i), curve.metric).estimate
            for i, value in enumerate(curve.values)
        ]
        for curve in data.curves
    }
    steps_path = plots.alignment_curves(
        data.curves,
        colors,
        analyses.run_styles,
        estimates,
        data.metric,
        analyses.refs,
        figure_path(options, "alignment_vs_steps"),
    )
    body = html.figure(
        steps_path.name,
        f"{data.metric} vs training step",
        f"{data.metric} along training, per run (color: its configuration, small = dark; line style: its "
        f"training seed), each evaluation with its {LEVEL:.0%} interval over the prompts and eval seeds."
        + refs_text(analyses)
        + sparse_note(data.curves),
    )
    lines = [
        plots.LogLine(
            run.run_id if (curve := _curve(data, run.run_id)) is None else curve.label,
            analyses.run_color(run.run_id),
            analyses.run_styles.get(run.run_id, "-"),
            log.steps,
            log.train_flops,
            log.loss,
            log.lr,
        )
        for run in data.runs
        if (log := data.logs.get(run.run_id)) is not None
    ]
    if lines:
        logs_path = plots.training_logs(lines, figure_path(options, "training_logs"))
        body += html.figure(
            logs_path.name,
            "training loss and learning rate vs step and vs training FLOPs",
            "Training loss (top, log scale; each point the mean over the steps since the previous log line) and "
            "learning rate (bottom) of every run that has logged, against the step (left) and the training "
            "compute C (right), from each run's metrics.jsonl.",
        )
    else:
        body += html.note("No run has a training log (metrics.jsonl) yet.")
    return html.Section("training", "Along training: alignment, loss and learning rate", body)


def _curve(data: StudyData, run_id: str) -> Curve | None:
    return next((c for c in data.curves if c.run_id == run_id), None)


def _quartiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(q25, median, q75) of the logged windows after the first (which holds start-up: compile, data workers)."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) > 2:
        finite = finite[1:]
    if not finite:
        return None
    q25, median, q75 = np.percentile(finite, [25, 50, 75])
    return float(q25), float(median), float(q75)


def speed_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data = analyses.data
    rows = []
    for run in data.runs:
        log = data.logs.get(run.run_id)
        if log is None:
            continue
        curve = _curve(data, run.run_id)
        rows.append(
            plots.Throughput(
                run.run_id if curve is None else curve.label,
                analyses.run_color(run.run_id),
                _quartiles(log.images_per_s),
                _quartiles(log.mfu),
            )
        )
    if not rows:
        return html.Section("speed", "Training speed", html.note("No run has a training log yet."))
    path = plots.throughput(rows, figure_path(options, "throughput"))
    peaks = sorted({m for run in data.runs if (m := _peak_text(data, run.run_id))})
    body = html.figure(
        path.name,
        "training images per second and MFU per run",
        "Training images per second (left) and model FLOPs utilization (right) of each run: the bar is the "
        "median over its logged windows (the first, which holds start-up, left out), the whisker spans the "
        "middle half. Windows that hold an evaluation or a checkpoint are slower. MFU = training FLOPs per "
        "second / the peak FLOP/s of the device" + (f" ({'; '.join(peaks)})." if peaks else "."),
    )
    return html.Section("speed", "Training speed: images/s and MFU", body)


def _peak_text(data: StudyData, run_id: str) -> str | None:
    log = data.logs.get(run_id)
    message = "" if log is None else log.status_message
    return message if message.startswith("peak") else None


def category_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data = analyses.data
    configurations = data.configurations
    categories = sorted({name for c in configurations for name in c.as_curve().category})
    if not categories:
        return html.Section(
            "categories",
            "Per-category alignment",
            html.note(f"The {data.metric} results have no per-category breakdown."),
        )
    per_configuration = [
        {name: configuration_value(analyses, c, name) for name in categories} for c in configurations
    ]
    overall = [configuration_value(analyses, c) for c in configurations]
    chance, ceiling = analyses.category_chance, analyses.ceiling.per_category
    path = plots.category_bars(
        [c.label for c in configurations],
        [analyses.colors[c.key] for c in configurations],
        categories,
        [[values[name].value for name in categories] for values in per_configuration],
        [[values[name].estimate for name in categories] for values in per_configuration],
        chance,
        ceiling,
        data.metric,
        figure_path(options, "categories"),
    )
    caption = (
        f"Final {data.metric} per prompt category (GenEval's categories in the shapes world), one bar per "
        f"configuration (the mean over its training seeds) with its {LEVEL:.0%} interval where the category has "
        "the prompts for one (see the table)."
    )
    if chance:
        caption += " Dashed: each category's chance level (a uniform guesser on that category's questions)."
    if ceiling:
        caption += " Dotted: the oracle's accuracy on ground-truth renders of that category's prompts."
    body = html.figure(path.name, f"final {data.metric} per category and configuration", caption)
    rows = [
        [c.label, overall[i].text()] + [per_configuration[i][name].text() for name in categories]
        for i, c in enumerate(configurations)
    ]
    if chance:
        rows.append(
            ["chance"]
            + [fmt.metric_value(data.chance_level)]
            + [fmt.metric_value(chance.get(n)) for n in categories]
        )
    if ceiling:
        rows.append(
            ["oracle on ground truth", fmt.metric_value(analyses.ceiling.value)]
            + [fmt.metric_value(ceiling.get(n)) for n in categories]
        )
    body += html.table(
        ["configuration", "overall", *categories], rows, [False] + [True] * (len(categories) + 1)
    )
    category_shown = [v for values in per_configuration for v in values.values() if v.value is not None]
    for shown, what in ((overall, "Overall final values"), (category_shown, "Per-category final values")):
        note = intervals_note(shown, what, data.metric, per_run=False)
        if note:
            body += html.paragraph(note)
    return html.Section("categories", "Per-category alignment", body)


def relative_link(target: Path, out_dir: Path) -> str:
    """A link from the page to a file or folder of the study: relative when it can be, else a file: URI."""
    try:
        relative = os.path.relpath(target.resolve(), out_dir.resolve())
    except ValueError:  # another drive (Windows)
        return target.resolve().as_uri()
    return Path(relative).as_posix() + ("/" if target.is_dir() else "")


def runs_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data = analyses.data
    resolutions = sorted({run.config.get("data", {}).get("resolution") for run in data.runs}, key=str)
    gmacs_header = f"GMACs ({resolutions[0]} px)" if len(resolutions) == 1 else "GMACs"
    # Grid axes every run shares are a sentence under the table, not columns (the table stays narrow).
    shared_axes = {
        header: values.pop()
        for header, getter in (
            ("data size", lambda run: fmt.count(run.dataset_size)),
            ("noun pairs", lambda run: fmt.count(run.dataset_noun_pairs)),
            ("captions", lambda run: run.caption_policy),
        )
        if len(values := {getter(run) for run in data.runs}) == 1
    }
    headers = [
        "run",
        "backbone",
        "params",
        gmacs_header,
        "training FLOPs",
        "data size",
        "noun pairs",
        "captions",
        "seed",
        "status",
        "final loss",
        "images/s",
        "elapsed",
        "last eval step",
    ] + [f"final {m}" for m in data.metrics]
    curves = {(c.metric, c.run_id): c for curves in data.curves_by_metric.values() for c in curves}
    rows, shown = [], {m: [] for m in data.metrics}
    for run in data.runs:
        last_step = data.last_evaluated_step(run.run_id)
        log = data.logs.get(run.run_id)
        finals = []
        for m in data.metrics:
            value = final_value(curves.get((m, run.run_id)))
            shown[m].append(value)
            finals.append(value.text())
        folder = Path(run.run_dir)
        files = [
            html.link(relative_link(folder / name, options.out_dir), label)
            for name, label in (("config.json", "config"), ("metrics.jsonl", "metrics"), ("eval", "eval"))
            if (folder / name).exists()
        ]
        gmacs = fmt.number(run.gmacs)
        if len(resolutions) > 1 and run.gmacs is not None:
            gmacs += f" @ {run.config.get('data', {}).get('resolution')} px"
        run_cell = (
            html.link(relative_link(folder, options.out_dir), run.run_id) if folder.is_dir() else run.run_id
        )
        if files:  # under the id, on its own line: config · metrics · eval
            links = html.join(
                *[part for i, link in enumerate(files) for part in ((" · ",) if i else ()) + (link,)]
            )
            run_cell = html.join(run_cell, " ", html.span(links, "sub"))
        rows.append(
            [
                run_cell,
                run.backbone,
                fmt.count(run.params),
                gmacs,
                fmt.MISSING
                if log is None or log.final_train_flops is None
                else plots.short_number(log.final_train_flops),
                fmt.count(run.dataset_size),
                fmt.count(run.dataset_noun_pairs),
                run.caption_policy,
                str(run.seed),
                run.status,
                fmt.number(None if log is None else log.final_loss),
                fmt.number(run.images_per_s),
                fmt.duration(run.elapsed_s),
                fmt.MISSING if last_step is None else str(last_step),
            ]
            + finals
        )
    numeric = [False, False, True, True, True, True, True, False, True, False, True, True, True, True]
    numeric += [True] * len(data.metrics)
    keep = [i for i, header in enumerate(headers) if header not in shared_axes]
    body = html.table(
        [headers[i] for i in keep], [[row[i] for i in keep] for row in rows], [numeric[i] for i in keep]
    )
    shared = "; ".join(f"{header} {value}" for header, value in shared_axes.items())
    body += html.paragraph(
        (f"Every run has the same {shared}. " if shared else "")
        + "Ordered by parameters. The run links open each run's folder (config.json, metrics.jsonl, eval/ with "
        "the evaluation images). Training FLOPs and the final loss are the last logged values (the loss is "
        "the mean over that log window); images/s is the study database's figure for the whole run. Final "
        "values are at each run's last evaluated step; a run still training or stopped early is shown at the "
        "step it reached."
    )
    for m in data.metrics:
        note = intervals_note(shown[m], "Final values", m)
        if note:
            body += html.paragraph(note)
    if data.left_out:
        body += html.paragraph(f"Runs without an evaluation of {data.metric}: {'; '.join(data.left_out)}.")
    return html.Section("runs", "Runs", body)


def _save_cell(image: np.ndarray, path: Path) -> Path:
    Image.fromarray(image).save(path, optimize=True)
    return path


def samples_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data = analyses.data
    grid = collect_samples(data, max_columns=options.sample_columns)
    body = ""
    if grid.cells:
        folder = options.out_dir / SAMPLES_DIR
        folder.mkdir(exist_ok=True)
        for stale in folder.glob("*.png"):
            stale.unlink()
        cell_h, cell_w = grid.cell_px
        truth = None
        if analyses.shapes is not None:
            truth = ground_truth_images(
                analyses.shapes, [c.prompt_id for c in grid.columns], grid.columns[0].seed
            )
            if all(image is None for image in truth):
                truth = None

        def image_cell(image: np.ndarray | None, name: str, alt: str) -> str:
            if image is None:
                return fmt.MISSING
            _save_cell(image, folder / name)
            return html.Markup(
                f'<img src="{SAMPLES_DIR}/{html.text(name)}" width="{cell_w}" height="{cell_h}" '
                f'alt="{html.text(alt)}">'
            )

        header = "".join(
            f'<th scope="col">{html.text(c.caption)} <span class="sub">eval seed {c.seed}</span></th>'
            for c in grid.columns
        )
        body_rows = []
        if truth is not None:
            cells = "".join(
                f"<td>{image_cell(None if image is None else enlarge(image, grid.upscale), f'truth_{j:02d}.png', f'ground truth: {c.caption}')}</td>"
                for j, (image, c) in enumerate(zip(truth, grid.columns))
            )
            body_rows.append(
                f'<tr class="truth"><th scope="row">ground truth <span class="sub">a render of the prompt '
                f"({analyses.shapes.resolution} px)</span></th>{cells}</tr>"
            )
        for r, (row, images) in enumerate(zip(grid.rows, grid.cells)):
            cells = "".join(
                f"<td>{image_cell(image, f'run{r:02d}_{j:02d}.png', f'{row.label}: {c.caption}')}</td>"
                for j, (image, c) in enumerate(zip(images, grid.columns))
            )
            seed = "" if row.seed is None else f"training seed {row.seed} · "
            body_rows.append(
                f'<tr><th scope="row">{html.text(row.label)} <span class="sub">{seed}'
                f"{html.text(fmt.count(row.params))} params · step {row.step}</span></th>{cells}</tr>"
            )
        body += html.Markup(
            '<div class="scroll"><table class="samples"><thead><tr><th></th>'
            f"{header}</tr></thead><tbody>{''.join(body_rows)}</tbody></table></div>"
        )
        truth_text = (
            " The first row renders each prompt's ground truth in the shapes world (what a perfect model would "
            "draw, up to colors and sizes the prompt leaves open)."
            if truth is not None
            else ""
        )
        body += html.paragraph(
            "Rows: runs ordered by parameters, each at its last evaluated step. Columns: the same prompts and "
            f"eval seed for every run (the same starting noise per seed), spread over the prompt categories."
            f"{truth_text} Images are enlarged {grid.upscale}x by pixel repetition."
        )
    else:
        body += html.note("No sample images to show.")
    for text in grid.notes:
        body += html.note(text)
    return html.Section("samples", "Samples", body)

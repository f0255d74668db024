"""`build_report`: a study folder -> `report.html` with its PNGs beside it.

Sections follow the paper's analyses (Li et al., CVPR 2024): alignment along training (Sec. 4), scaling with
compute on the Pareto frontier (Sec. 6), parameters vs GMACs (Fig. 10), data scaling (Sec. 5-6), GenEval-style
categories, and side-by-side samples. A partial study renders with what exists: runs without evaluations are
in the table only, and an analysis the results cannot support says why in a sentence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from t2iscale.errors import UserError
from t2iscale.report import fmt, html, plots
from t2iscale.report.collect import StudyData, collect_study
from t2iscale.report.laws import (
    LawResult,
    dataset_sizes,
    fit_data_law,
    fit_frontier_law,
    size_correlations,
)
from t2iscale.report.samples import collect_samples
from t2iscale.scaling.points import AXES
from t2iscale.scaling.published import PUBLISHED_LAWS

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class ReportOptions:
    out_dir: Path  # where the page and its PNGs go
    bootstrap: int  # bootstrap refits for the laws' intervals
    seed: int  # of the bootstrap
    sample_columns: int  # prompts shown per run in the sample grid


def default_out(study_dir: str | Path) -> Path:
    return Path(study_dir) / "report" / REPORT_NAME


def build_report(
    study_dir: str | Path,
    out: str | Path | None = None,
    metric: str = "tifa",
    bootstrap: int = 1000,
    seed: int = 0,
    sample_columns: int = 8,
    progress: bool = True,
) -> Path:
    """Write the study's report to `out` (default `<study>/report/report.html`) and return its path."""
    out = Path(out) if out is not None else default_out(study_dir)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"report file {str(out)!r}: expected a name ending in .html")
    if bootstrap < 0:
        raise UserError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    if sample_columns < 1:
        raise UserError(f"sample_columns must be >= 1, got {sample_columns}")
    data = collect_study(study_dir, metric)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = ReportOptions(out.parent, bootstrap, seed, sample_columns)

    builders = (
        runs_section,
        training_section,
        compute_section,
        size_section,
        data_section,
        category_section,
        samples_section,
    )
    bar_options = {} if progress else {"disable": True}  # an explicit disable would override TQDM_DISABLE
    sections = [
        build(data, options) for build in tqdm(builders, desc="report", unit="section", **bar_options)
    ]
    title = f"Scaling study report: {data.study_dir.resolve().name}"
    out.write_text(html.page(title, intro(data), sections), encoding="utf-8")
    return out


def intro(data: StudyData) -> str:
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(data.status_counts().items()))
    return html.paragraph(
        f"Study {data.study_dir.resolve()}: {len(data.runs)} runs ({statuses}); "
        f"{len(data.curves)} evaluated on {data.metric}. Metrics in the study: {', '.join(data.metrics)}."
    ) + html.paragraph(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by t2iscale report.")


def _png(options: ReportOptions, name: str) -> Path:
    return options.out_dir / name


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
    rows = []
    for run in data.runs:
        last_step = data.last_evaluated_step(run.run_id)
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
            + [fmt.metric_value(data.final_value(run.run_id, m)) for m in data.metrics]
        )
    numeric = [False, False, True, True, True, True, False, True, False, True, True, True]
    body = html.table(headers, rows, numeric + [True] * len(data.metrics))
    body += html.paragraph(
        "Ordered by parameters. Final values are at each run's last evaluated step; a run still training "
        "or stopped early is compared at the step it reached."
    )
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
    band = f" and its {law.fit.ci_level:.0%} bootstrap band" if law.fit.n_bootstrap else ""
    return f", with S = a·{law.axis.symbol}^b fitted on the frontier{band}, drawn over the X range it was fitted on."


def _law_text(law: LawResult, metric: str) -> str:
    """The fitted law with every parameter's interval, or the reason there is none."""
    if law.fit is None:
        return html.note(law.reason or "No fit.")
    fit = law.fit
    lines = [html.law(fit.render(law.axis.symbol))]
    parameters = [
        f"{name} = {fit.params[name]:.4g}, {fmt.interval(fit.interval(name), fit.ci_level)}"
        for name in fit.param_names
    ]
    lines.append(html.items(parameters))
    bootstrap = (
        f"bootstrap B = {fit.n_bootstrap} (failed refits: {fit.n_bootstrap_failed}, seed {fit.seed})"
        if fit.n_bootstrap
        else "no bootstrap"
    )
    lines.append(
        html.paragraph(
            f"Fitted by least squares on log S against log {law.axis.symbol}, on {len(law.frontier)} "
            f"Pareto-frontier points of {len(law.candidates)}; R² = {fmt.number(fit.r2)}, "
            f"RMSE = {fit.rmse:.4g}; {bootstrap}."
        )
    )
    return "".join(lines) + _published_text(law.axis.name, metric)


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


def compute_section(data: StudyData, options: ReportOptions) -> html.Section:
    law = fit_frontier_law(
        data.curves, "compute", data.metric, bootstrap=options.bootstrap, seed=options.seed
    )
    body = ""
    if law.candidates:
        png = plots.frontier_law(
            law,
            {c.run_id: c.label for c in data.curves},
            plots.run_colors(data.curves),
            data.metric,
            data.chance_level,
            _png(options, "compute_frontier.png"),
        )
        body += html.figure(
            png.name,
            f"{data.metric} vs training FLOPs with Pareto frontier and fitted law",
            "Every evaluation of every run (colored by run) and the Pareto frontier (black rings: the best "
            "value reached with at most that much compute)" + _fit_caption(law),
        )
    body += _law_text(law, data.metric)
    return html.Section("compute", "Scaling with training compute", body)


def size_section(data: StudyData, options: ReportOptions) -> html.Section:
    correlations = size_correlations(data.curves)
    png = plots.size_scatter(
        data.curves,
        plots.run_colors(data.curves),
        data.metric,
        data.chance_level,
        correlations,
        _png(options, "size_correlation.png"),
    )
    body = html.figure(
        png.name,
        f"final {data.metric} vs parameters and vs GMACs",
        f"Final {data.metric} of each run against its parameters (left) and its inference GMACs (right). "
        "The paper (Fig. 10) finds GMACs the better predictor.",
    )
    if correlations.reason:
        body += html.note(correlations.reason)
    else:
        rows = [
            [
                r.predictor,
                r.method + (" (log size)" if r.log_predictor else ""),
                f"{r.coefficient:+.4f}",
                f"{r.p_value:.3g}",
                str(r.n_runs),
            ]
            for r in correlations.results
        ]
        body += html.table(
            ["predictor", "correlation", "coefficient", "p-value", "runs"],
            rows,
            [False, False, True, True, True],
        )
    return html.Section("size", "Parameters vs GMACs", body)


def data_section(data: StudyData, options: ReportOptions) -> html.Section:
    law = fit_data_law(data.curves, data.metric, bootstrap=options.bootstrap, seed=options.seed)
    if len(dataset_sizes(data.curves)) < 2:
        return html.Section("data", "Data scaling", html.note(law.reason or "No data scaling."))
    png = plots.frontier_law(
        law,
        {c.run_id: c.label for c in data.curves},
        plots.run_colors(data.curves),
        data.metric,
        data.chance_level,
        _png(options, "data_scaling.png"),
    )
    body = html.figure(
        png.name,
        f"final {data.metric} vs training-set image-noun pairs",
        f"Final {data.metric} of each run against its training set's image-noun pairs D and the Pareto "
        "frontier (black rings: the best value reached with at most that much data)" + _fit_caption(law),
    )
    body += _law_text(law, data.metric)
    return html.Section("data", "Data scaling", body)


def category_section(data: StudyData, options: ReportOptions) -> html.Section:
    categories = sorted({name for curve in data.curves for name in curve.category})
    if not categories:
        return html.Section(
            "categories",
            "Per-category alignment",
            html.note(f"The {data.metric} results have no per-category breakdown."),
        )
    png = plots.category_bars(
        data.curves, plots.run_colors(data.curves), categories, data.metric, _png(options, "categories.png")
    )
    body = html.figure(
        png.name,
        f"final {data.metric} per category and run",
        f"Final {data.metric} per prompt category (GenEval's categories in the shapes world), one bar per run.",
    )
    rows = [
        [curve.run_id, fmt.metric_value(curve.final_value)]
        + [
            fmt.metric_value(curve.category[name][-1]) if name in curve.category else fmt.MISSING
            for name in categories
        ]
        for curve in data.curves
    ]
    body += html.table(["run", "overall", *categories], rows, [False] + [True] * (len(categories) + 1))
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

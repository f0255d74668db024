"""The report's figures, written as SVG (vector: sharp at any screen density and zoom).

Built on `matplotlib.figure.Figure` directly (no pyplot): the Agg/SVG canvases render without touching the global
backend or keeping figures alive between calls. Every figure is drawn under one style (`STYLE`: 10 pt text on a
6.4-7 inch figure, shown at its natural size of 600-700 CSS px, so text stays about 13 px on any screen) and
written deterministically (no date, a fixed hash salt), so rebuilding a report changes only what changed.

Conventions shared by the figures:
- each configuration (runs pooled over training seeds) has one color, from small (dark) to large (light) along
  viridis, so size trends read across plots; a configuration's seeds share its color;
- log axes carry one label per decade, 10^k, and span at least two labelled decades;
- a metric axis shows the floor (chance, dashed) and, where measured, the ceiling (the oracle on ground-truth
  renders, dotted); its limits come from the data, their intervals and those two lines, and a law's interval band
  is cut at the axes (the caption says so when it is);
- legends sit under the axes, so the plot keeps its width on a narrow screen.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter

from t2iscale.eval.intervals import Estimate
from t2iscale.findings.laws import Band, LawResult
from t2iscale.report import fmt
from t2iscale.scaling.correlation import Correlation
from t2iscale.scaling.points import Curve

WIDTH_IN = 6.4
FIGSIZE = (WIDTH_IN, 3.6)
PNG_DPI = 200  # raster figures (none by default) at 2x of 100 px per inch
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "path",  # glyphs as paths: the same text on every machine, no font needed
    "svg.hashsalt": "t2iscale-report",  # stable ids: the same figure gives the same file
}
CHANCE_STYLE = {"linestyle": "--", "color": "0.35", "linewidth": 1.1}
CEILING_STYLE = {"linestyle": ":", "color": "#1a7f37", "linewidth": 1.5}
LAW_COLOR = "crimson"
ARM_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
SEED_STYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class References:
    """The metric's floor and ceiling, drawn on every axis of that metric."""

    chance: float | None = None
    ceiling: float | None = None
    value_range: tuple[float, float] = (-math.inf, math.inf)


def styled(function):
    """Draw under `STYLE` without changing the caller's matplotlib settings."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def save(figure: Figure, path: Path) -> Path:
    """SVG (no date, so rebuilding gives the same bytes) or, for a .png name, PNG at 2x."""
    if path.suffix == ".svg":
        figure.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    else:
        figure.savefig(path, dpi=PNG_DPI, bbox_inches="tight")
    return path


def colors_by_size(keys: Sequence[str]) -> dict[str, tuple]:
    """One color per key (configurations ordered by size): viridis from dark (small) to light (large)."""
    cmap = colormaps["viridis"]
    last = max(1, len(keys) - 1)
    return {key: cmap(0.85 * i / last) for i, key in enumerate(keys)}


def short_number(value: float, _position=None) -> str:
    """Numbers in tables that stay short: 0.09, 250, 1.5e9."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def decade_limits(low: float, high: float, pad: float = 0.12) -> tuple[float, float]:
    """Log-axis limits around [low, high] (padded by `pad` decades) that hold at least two powers of ten, so
    the axis has at least two 10^k labels."""
    a, b = math.log10(low) - pad, math.log10(high) + pad
    if math.floor(b) - math.ceil(a) + 1 < 2:
        a, b = math.floor(a), math.ceil(b)
        if b - a < 1:
            b = a + 1
    return 10.0**a, 10.0**b


def log_axis(ax, which: str, values: Sequence[float]) -> None:
    """A log axis labelled only at powers of ten (10^k), minor ticks unlabelled, limits from `values`."""
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if finite:
        (ax.set_xlim if which == "x" else ax.set_ylim)(*decade_limits(min(finite), max(finite)))
    axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_major_formatter(LogFormatterSciNotation(base=10))
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=100))
    axis.set_minor_formatter(NullFormatter())


def metric_limits(values: Sequence[float], refs: References, pad: float = 0.06) -> tuple[float, float]:
    """y limits of a metric axis: the values (points and their interval ends), floor and ceiling, padded, kept
    within a little of the metric's range."""
    ys = [v for v in values if v is not None and math.isfinite(v)]
    ys += [v for v in (refs.chance, refs.ceiling) if v is not None]
    if not ys:
        return (0.0, 1.0)
    low, high = min(ys), max(ys)
    margin = pad * (high - low) or 0.05
    low, high = low - margin, high + margin
    range_low, range_high = refs.value_range
    span = (range_high - range_low) if math.isfinite(range_high - range_low) else 0.0
    if math.isfinite(range_low):
        low = max(low, range_low - 0.02 * span)
    if math.isfinite(range_high):
        high = min(high, range_high + 0.02 * span)
    return low, high


def band_is_cut(band: Band | None, limits: tuple[float, float]) -> bool:
    """True when part of a law's interval band lies outside the axes (it is drawn cut there)."""
    if band is None:
        return False
    finite_lo = band.lo[np.isfinite(band.lo)]
    finite_hi = band.hi[np.isfinite(band.hi)]
    return bool(
        (finite_lo.size and finite_lo.min() < limits[0])
        or (finite_hi.size and finite_hi.max() > limits[1])
        or not (np.all(np.isfinite(band.lo)) and np.all(np.isfinite(band.hi)))
    )


def band_label(level: float, clipped: bool) -> str:
    """The legend entry of a law's interval band: '95% interval of the law'."""
    return f"{level:.0%} interval of the law" + (" (clipped to the metric's range)" if clipped else "")


def _references(ax, refs: References, label: bool = True) -> None:
    if refs.chance is not None:
        ax.axhline(refs.chance, label=f"chance, floor ({refs.chance:.3f})" if label else None, **CHANCE_STYLE)
    if refs.ceiling is not None:
        ax.axhline(
            refs.ceiling,
            label=f"oracle on ground truth, ceiling ({refs.ceiling:.3f})" if label else None,
            **CEILING_STYLE,
        )


def _error_bars(ax, xs, estimates: Sequence[Estimate | None], color, **options) -> None:
    """Vertical bars from lo to hi at `xs` for the values that have an interval."""
    kept = [(x, e) for x, e in zip(xs, estimates) if e is not None]
    if kept:
        ax.errorbar(
            [x for x, _ in kept],
            [e.value for _, e in kept],
            yerr=[[e.value - e.lo for _, e in kept], [e.hi - e.value for _, e in kept]],
            fmt="none",
            ecolor=color,
            elinewidth=1.0,
            capsize=2.5,
            **options,
        )


def _legend_below(figure: Figure, ax, columns: int = 2, handles=None, labels=None) -> None:
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if handles:
        figure.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncols=min(columns, len(handles)),
            frameon=False,
        )


def _draw_band(ax, band: Band, limits: tuple[float, float], label: str) -> None:
    """The law and its interval, the band cut at the axes (a band from few points can be far wider)."""
    ax.plot(band.x, band.value, color=LAW_COLOR, linewidth=1.6, zorder=4)
    lo = np.where(np.isfinite(band.lo), band.lo, limits[0])
    hi = np.where(np.isfinite(band.hi), band.hi, limits[1])
    ax.fill_between(
        band.x,
        np.clip(lo, *limits),
        np.clip(hi, *limits),
        color=LAW_COLOR,
        alpha=0.15,
        linewidth=0,
        label=label,
    )


# -- paper-style panels ----------------------------------------------------------------------------------------


@styled
def law_figure(
    law: LawResult,
    colors: dict[str, tuple],
    labels: dict[str, str],
    point_labels: dict[str, str],
    estimates: dict[tuple[str, int], Estimate | None],
    metric: str,
    refs: References,
    limits: tuple[float, float],
    path: Path,
) -> Path:
    """The paper's S vs X panel (Sec. 6): every configuration's points with their intervals (compute: joined
    along training), each configuration's last point labelled (`point_labels`, e.g. its size), the Pareto frontier
    (rings), the fitted law with its band cut at the axes, floor and ceiling."""
    figure = Figure(figsize=FIGSIZE)
    ax = figure.add_subplot()
    by_key: dict[str, list] = {}
    for point in law.candidates:
        by_key.setdefault(point.run_id, []).append(point)
    connect = "-" if law.axis.name == "compute" else "none"
    for key, points in by_key.items():
        points = sorted(points, key=lambda p: p.x)
        color = colors.get(key, "0.5")
        ax.plot(
            [p.x for p in points],
            [p.value for p in points],
            marker="o",
            markersize=4,
            linestyle=connect,
            linewidth=1.0,
            color=color,
            label=labels.get(key, key),
        )
        _error_bars(
            ax, [p.x for p in points], [estimates.get((key, p.step)) for p in points], color, alpha=0.8
        )
        last = points[-1]
        if key in point_labels:
            ax.annotate(
                point_labels[key],
                (last.x, last.value),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=8,
                color="0.15",
            )
    if law.frontier:
        ax.plot(
            [p.x for p in law.frontier],
            [p.value for p in law.frontier],
            marker="o",
            markersize=8,
            markerfacecolor="none",
            markeredgecolor="black",
            linestyle="none",
            label="Pareto frontier (fitted)" if law.frontier != law.candidates else "points fitted",
        )
    band = law.band()
    if band is not None:
        ax.plot([], [], color=LAW_COLOR, linewidth=1.6, label=law.fit.render(law.axis.symbol))
        _draw_band(ax, band, limits, band_label(law.fit.ci_level, band.clipped))
    _references(ax, refs)
    log_axis(ax, "x", [p.x for p in law.candidates])
    ax.set_ylim(*limits)
    unit = {"compute": "FLOPs", "params": "parameters", "data": "image-noun pairs"}[law.axis.name]
    title = {"compute": "training compute", "params": "model size", "data": "training data"}[law.axis.name]
    ax.set_xlabel(f"{title} {law.axis.symbol} ({unit})")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, which="major")
    _legend_below(figure, ax)
    return save(figure, path)


@styled
def size_figure(
    curves: Sequence[Curve],
    colors: dict[str, tuple],
    law: LawResult,
    estimates: dict[str, Estimate | None],
    correlations: Sequence[Correlation],
    metric: str,
    refs: References,
    limits: tuple[float, float],
    path: Path,
) -> Path:
    """Final metric of each configuration against parameters N (left, with the law S = a·N^b and its band) and
    against inference GMACs (right), the paper's Fig. 10 comparison; one point per configuration with its
    interval (`estimates` by configuration key)."""

    def find(predictor: str, method: str) -> Correlation | None:
        return next((r for r in correlations if r.predictor == predictor and r.method == method), None)

    figure = Figure(figsize=(WIDTH_IN * 1.1, 3.4))
    axes = figure.subplots(1, 2, sharey=True)
    for ax, predictor, label in zip(axes, ("params", "gmacs"), ("parameters N", "inference GMACs")):
        xs = []
        for curve in curves:
            x = getattr(curve, predictor)
            if x is None:
                continue
            xs.append(x)
            color = colors.get(curve.run_id, "0.5")
            ax.plot([x], [curve.final_value], "o", markersize=5, color=color, label=curve.label)
            _error_bars(ax, [x], [estimates.get(curve.run_id)], color)
        if predictor == "params" and law.fit is not None:
            band = law.band()
            ax.plot([], [], color=LAW_COLOR, linewidth=1.6, label=law.fit.render("N"))
            _draw_band(ax, band, limits, band_label(law.fit.ci_level, band.clipped))
        _references(ax, refs, label=predictor == "params")
        log_axis(ax, "x", xs)
        ax.set_xlabel(label)
        spearman, pearson = find(predictor, "spearman"), find(predictor, "pearson")
        if spearman is not None and pearson is not None:
            ax.set_title(
                f"Spearman ρ {spearman.coefficient:+.2f}, Pearson r {pearson.coefficient:+.2f}", fontsize=9
            )
        ax.grid(alpha=0.3, which="major")
    axes[0].set_ylim(*limits)
    axes[0].set_ylabel(f"final {metric}")
    _legend_below(figure, axes[0])
    return save(figure, path)


@styled
def alignment_curves(
    curves: Sequence[Curve],
    colors: dict[str, tuple],
    styles: dict[str, str],
    estimates: dict[str, list[Estimate | None]],
    metric: str,
    refs: References,
    path: Path,
) -> Path:
    """The metric along training, per run, against the step: each evaluation with its interval over prompts
    (within the run's seed); runs of one configuration share its color, seeds differ in line style."""
    figure = Figure(figsize=FIGSIZE)
    ax = figure.add_subplot()
    values = []
    for curve in curves:
        color = colors.get(curve.run_id, "0.5")
        ax.plot(
            curve.steps,
            curve.values,
            marker="o",
            markersize=4,
            color=color,
            linestyle=styles.get(curve.run_id, "-"),
            label=curve.label,
        )
        run_estimates = estimates.get(curve.run_id, [])
        _error_bars(ax, curve.steps, run_estimates, color, alpha=0.7)
        values += list(curve.values) + [e.lo for e in run_estimates if e] + [e.hi for e in run_estimates if e]
    _references(ax, refs)
    ax.set_ylim(*metric_limits(values, refs))
    ax.set_xlim(0, max((max(curve.steps) for curve in curves if curve.steps), default=1) * 1.04)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    _legend_below(figure, ax)
    return save(figure, path)


@dataclass(frozen=True)
class LogLine:
    """One run's training log as the log figures draw it."""

    label: str
    color: tuple | str
    style: str
    steps: Sequence[int]
    train_flops: Sequence[float]
    loss: Sequence[float]
    lr: Sequence[float]


@styled
def training_logs(lines: Sequence[LogLine], path: Path) -> Path:
    """Loss (top) and learning rate (bottom) against the step (left) and training FLOPs (right)."""
    figure = Figure(figsize=(WIDTH_IN * 1.1, 5.2))
    axes = figure.subplots(2, 2, sharex="col", sharey="row")
    flops = []
    for line in lines:
        steps = np.asarray(line.steps, dtype=float)
        c = np.asarray(line.train_flops, dtype=float)
        keep = np.isfinite(c) & (c > 0)
        for row, values in ((0, line.loss), (1, line.lr)):
            y = np.asarray(values, dtype=float)
            options = {"color": line.color, "linestyle": line.style, "linewidth": 1.0}
            axes[row, 0].plot(steps, y, label=line.label if row == 0 else None, **options)
            axes[row, 1].plot(c[keep], y[keep], **options)
        flops += list(c[keep])
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("loss (log scale)")
    axes[1, 0].set_ylabel("learning rate")
    axes[1, 0].ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axes[1, 0].set_xlabel("training step")
    axes[1, 0].xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    log_axis(axes[1, 1], "x", flops)
    axes[1, 1].set_xlabel("training compute C (FLOPs)")
    for ax in axes.flat:
        ax.grid(alpha=0.3, which="major")
    _legend_below(figure, axes[0, 0], columns=3)
    return save(figure, path)


@dataclass(frozen=True)
class Throughput:
    """One run's measured speed: the median over its logged windows with the interquartile range."""

    label: str
    color: tuple | str
    images_per_s: tuple[float, float, float] | None  # (q25, median, q75)
    mfu: tuple[float, float, float] | None  # fractions


@styled
def throughput(rows: Sequence[Throughput], path: Path) -> Path:
    """Images/s (left) and MFU in % (right) per run: bars at the median, whiskers over the middle half."""
    height = 1.0 + 0.32 * len(rows)
    figure = Figure(figsize=(WIDTH_IN, max(2.2, height)))
    axes = figure.subplots(1, 2, sharey=True)
    positions = np.arange(len(rows))[::-1]
    for ax, key, title, scale in (
        (axes[0], "images_per_s", "training images/s", 1.0),
        (axes[1], "mfu", "MFU (%)", 100.0),
    ):
        for y, row in zip(positions, rows):
            quartiles = getattr(row, key)
            if quartiles is None:
                continue
            low, median, high = (scale * q for q in quartiles)
            ax.barh(y, median, height=0.7, color=row.color)
            ax.errorbar(
                median, y, xerr=[[median - low], [high - median]], fmt="none", ecolor="0.2", capsize=2
            )
        ax.set_xlabel(title)
        ax.grid(alpha=0.3, axis="x")
        ax.set_xlim(left=0)
    axes[0].set_yticks(positions, [row.label for row in rows], fontsize=8.5)
    return save(figure, path)


@styled
def category_bars(
    labels: Sequence[str],
    colors: Sequence,
    categories: Sequence[str],
    values: Sequence[Sequence[float | None]],
    estimates: Sequence[Sequence[Estimate | None]],
    chance: dict[str, float],
    ceiling: dict[str, float],
    metric: str,
    path: Path,
) -> Path:
    """Final values per prompt category: one group per category, one bar per configuration with its interval;
    each category's chance level (dashed) and the oracle's accuracy on ground-truth renders (dotted) span the
    group."""
    figure = Figure(figsize=(WIDTH_IN * 1.1, 3.6))
    ax = figure.add_subplot()
    positions = np.arange(len(categories))
    width = 0.8 / max(1, len(labels))
    for i, (label, color) in enumerate(zip(labels, colors)):
        centres = positions + (i - (len(labels) - 1) / 2) * width
        heights = [np.nan if v is None else v for v in values[i]]
        ax.bar(centres, heights, width, color=color, label=label)
        _error_bars(ax, centres, estimates[i], "0.15")
    for j, name in enumerate(categories):
        span = (positions[j] - 0.45, positions[j] + 0.45)
        if name in chance:
            ax.hlines(chance[name], *span, label="chance, per category" if j == 0 else None, **CHANCE_STYLE)
        if name in ceiling:
            ax.hlines(
                ceiling[name],
                *span,
                label="oracle on ground truth, per category" if j == 0 else None,
                **CEILING_STYLE,
            )
    ax.set_xticks(positions, [name.replace("_", " ") for name in categories])
    ax.set_ylim(0, 1.05 if metric == "tifa" else None)
    ax.set_ylabel(f"final {metric}")
    ax.grid(alpha=0.3, axis="y")
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: names[i] not in labels)  # configurations first
    _legend_below(figure, ax, 3, [handles[i] for i in order], [names[i] for i in order])
    return save(figure, path)


# -- findings -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmCurve:
    """An arm along training compute as the findings figure draws it: its value at each X with the interval over
    prompts and training seeds, and the spread of its seeds (each seed run's own value, min to max)."""

    name: str
    x: Sequence[float]
    value: Sequence[float]
    lo: Sequence[float]  # interval over prompts and training seeds (NaN where none)
    hi: Sequence[float]
    seed_lo: Sequence[float]  # the lowest and highest seed run at each X (equal to value with one seed)
    seed_hi: Sequence[float]
    ladder: bool  # one point per configuration (final evaluations) instead of one run along training
    color: tuple | str | None = None  # None: the next of ARM_COLORS


@styled
def arm_curves(arms: Sequence[ArmCurve], metric: str, refs: References, title: str, path: Path) -> Path:
    """The arms of one comparison against training compute: line = the arm's mean, dark band = the spread of its
    training seeds, light band = the 95% interval over prompts and seeds."""
    figure = Figure(figsize=FIGSIZE)
    ax = figure.add_subplot()
    values, xs = [], []
    for i, arm in enumerate(arms):
        color = arm.color if arm.color is not None else ARM_COLORS[i % len(ARM_COLORS)]
        x = np.asarray(arm.x, dtype=float)
        ax.plot(x, arm.value, marker="o", markersize=4, color=color, label=arm.name, zorder=3)
        lo, hi = np.asarray(arm.lo, dtype=float), np.asarray(arm.hi, dtype=float)
        if arm.ladder:
            ok = np.isfinite(lo)
            ax.errorbar(
                x[ok],
                np.asarray(arm.value)[ok],
                yerr=[np.asarray(arm.value)[ok] - lo[ok], hi[ok] - np.asarray(arm.value)[ok]],
                fmt="none",
                ecolor=color,
                capsize=2.5,
            )
        else:
            ax.fill_between(x, lo, hi, color=color, alpha=0.12, linewidth=0)
            ax.fill_between(x, arm.seed_lo, arm.seed_hi, color=color, alpha=0.3, linewidth=0)
        values += list(arm.value) + [v for v in np.concatenate([lo, hi]) if math.isfinite(v)]
        xs += list(x)
    _references(ax, References(refs.chance, None, refs.value_range))
    log_axis(ax, "x", xs)
    ax.set_ylim(*metric_limits(values, References(refs.chance, None, refs.value_range)))
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=9.5)
    ax.grid(alpha=0.3, which="major")
    _legend_below(figure, ax, columns=3)
    return save(figure, path)


@dataclass(frozen=True)
class Difference:
    label: str  # "A − B at step 900"
    effect: Estimate | None  # None: not comparable
    verdict: str


@styled
def differences(rows: Sequence[Difference], path: Path) -> Path:
    """The paired differences A − B with their 95% intervals, one row per pair, a line at zero."""
    figure = Figure(figsize=(WIDTH_IN, 0.9 + 0.42 * len(rows)))
    ax = figure.add_subplot()
    positions = np.arange(len(rows))[::-1]
    for y, row in zip(positions, rows):
        if row.effect is None:
            ax.text(0, y, "not comparable", va="center", ha="center", fontsize=8.5, color="0.4")
            continue
        e = row.effect
        separated = e.lo > 0 or e.hi < 0
        color = "#2b5f8a" if separated else "0.45"
        ax.errorbar(e.value, y, xerr=[[e.value - e.lo], [e.hi - e.value]], fmt="o", color=color, capsize=3)
    ax.axvline(0, color="0.3", linewidth=1)
    ax.set_yticks(positions, [row.label for row in rows], fontsize=8.5)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("paired difference A − B (95% interval)")
    ax.grid(alpha=0.3, axis="x")
    return save(figure, path)


def seed_styles(runs_by_configuration: Sequence[Sequence[str]]) -> dict[str, str]:
    """A line style per run: the k-th seed of every configuration draws in the k-th style."""
    return {
        run_id: SEED_STYLES[k % len(SEED_STYLES)]
        for runs in runs_by_configuration
        for k, run_id in enumerate(runs)
    }


def size_label(params: int | None) -> str:
    return "" if params is None else f"{fmt.count(params)}"

"""The report's figures, written as PNG.

Built on `matplotlib.figure.Figure` directly (no pyplot): the Agg canvas renders PNG without touching the
global backend or keeping figures alive between calls. Every run has one color in every figure, from small
(dark) to large (light) along viridis, so size trends read across plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from t2iscale.eval.intervals import Estimate
from t2iscale.findings.laws import LawResult
from t2iscale.report import fmt
from t2iscale.report.samples import GRID_PAD_PX, SampleGrid
from t2iscale.scaling.correlation import Correlation
from t2iscale.scaling.points import Curve

DPI = 100
FIGSIZE = (6.4, 3.8)  # inches at DPI: 640 x 380 px before the legend


def run_colors(curves: Sequence[Curve]) -> dict[str, tuple]:
    """One color per run; `curves` come ordered by size."""
    cmap = colormaps["viridis"]
    last = max(1, len(curves) - 1)
    return {curve.run_id: cmap(0.9 * i / last) for i, curve in enumerate(curves)}


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def short_number(value: float, _position=None) -> str:
    """Tick labels that stay short on log axes: 0.09, 250, 1.5e9."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _log_x(ax) -> None:
    """Log x with short labels; minor ticks get labels only when the data span less than a decade."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(short_number))
    low, high = ax.get_xlim()
    narrow = low > 0 and np.log10(high / low) < 1
    ax.xaxis.set_minor_formatter(FuncFormatter(short_number) if narrow else NullFormatter())
    ax.tick_params(axis="x", which="both", labelsize="small")


def _chance(ax, chance_level: float | None) -> None:
    if chance_level is not None:
        ax.axhline(
            chance_level, linestyle="--", color="0.4", linewidth=1, label=f"chance ({chance_level:.3f})"
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
            elinewidth=0.8,
            capsize=2,
            **options,
        )


def _legend(ax) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            fontsize="x-small",
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            frameon=False,
            ncols=1 if len(handles) <= 18 else 2,
        )


def alignment_curves(
    curves: Sequence[Curve],
    colors: dict[str, tuple],
    x: str,
    metric: str,
    chance_level: float | None,
    path: Path,
) -> Path:
    """Metric along training per run: x = "steps" (linear) or "train_flops" (log; step 0 has no FLOPs)."""
    figure = Figure(figsize=FIGSIZE)
    ax = figure.add_subplot()
    for curve in curves:
        xs = np.asarray(curve.steps if x == "steps" else curve.train_flops, dtype=float)
        ys = np.asarray(curve.values)
        keep = xs > 0 if x == "train_flops" else np.ones_like(xs, dtype=bool)
        ax.plot(xs[keep], ys[keep], marker="o", markersize=3, color=colors[curve.run_id], label=curve.label)
    if x == "train_flops":
        _log_x(ax)
        ax.set_xlabel("training compute C (FLOPs)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    _chance(ax, chance_level)
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(figure, path)


def band_label(level: float, clipped: bool) -> str:
    """The legend entry of a law's interval band: '95% interval of the law'."""
    return f"{level:.0%} interval of the law" + (" (clipped to the metric's range)" if clipped else "")


def frontier_law(
    law: LawResult,
    labels: dict[str, str],
    colors: dict[str, tuple],
    metric: str,
    chance_level: float | None,
    path: Path,
) -> Path:
    """(X, S) points per configuration, their Pareto frontier with each point's interval, and the fitted
    S = a·X^b with its interval band (clipped to the metric's range)."""
    figure = Figure(figsize=FIGSIZE)
    ax = figure.add_subplot()
    by_run: dict[str, list] = {}
    for point in law.candidates:
        by_run.setdefault(point.run_id, []).append(point)
    connect = "-" if law.axis.name == "compute" else "none"  # compute: one run's evaluations form its curve
    for run_id, points in by_run.items():
        ax.plot(
            [p.x for p in points],
            [p.value for p in points],
            marker="o",
            markersize=3,
            linestyle=connect,
            linewidth=0.8,
            alpha=0.7,
            color=colors.get(run_id, "0.5"),
            label=labels.get(run_id, run_id),
        )
    if law.frontier:
        ax.plot(
            [p.x for p in law.frontier],
            [p.value for p in law.frontier],
            marker="o",
            markersize=6,
            markerfacecolor="none",
            markeredgecolor="black",
            linestyle=":",
            color="black",
            label="Pareto frontier",
        )
        _error_bars(
            ax,
            [p.x for p in law.frontier],
            [law.estimates.get((p.run_id, p.step)) for p in law.frontier],
            "black",
        )
    band = law.band()
    if band is not None and law.candidates:
        # A band from few points can be orders of magnitude wide; keep the axes on the data.
        ys = [p.value for p in law.candidates] + ([chance_level] if chance_level is not None else [])
        margin = 0.15 * (max(ys) - min(ys)) or 0.05
        ax.set_ylim(min(ys) - margin, max(ys) + margin)
    if band is not None:
        ax.plot(band.x, band.value, color="crimson", linewidth=1.5, label=law.fit.render(law.axis.symbol))
        if np.all(np.isfinite(band.lo)):
            ax.fill_between(
                band.x,
                band.lo,
                band.hi,
                color="crimson",
                alpha=0.2,
                linewidth=0,
                label=band_label(law.fit.ci_level, band.clipped),
            )
    _log_x(ax)
    unit = "FLOPs" if law.axis.name == "compute" else "image-noun pairs"
    ax.set_xlabel(f"{law.axis.symbol} ({unit})")
    ax.set_ylabel(metric)
    _chance(ax, chance_level)
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(figure, path)


def size_scatter(
    curves: Sequence[Curve],
    colors: dict[str, tuple],
    metric: str,
    chance_level: float | None,
    correlations: Sequence[Correlation],
    estimates: dict[str, Estimate | None],
    path: Path,
) -> Path:
    """Final metric against parameters (left) and GMACs (right), the paper's Fig. 10 comparison; one point per
    curve (a configuration), with its interval from `estimates` (by run id) where there is one."""

    def find(predictor: str, method: str) -> Correlation | None:
        return next((r for r in correlations if r.predictor == predictor and r.method == method), None)

    figure = Figure(figsize=(FIGSIZE[0] * 1.5, FIGSIZE[1]))
    axes = figure.subplots(1, 2, sharey=True)
    for ax, predictor, label in zip(axes, ("params", "gmacs"), ("parameters N", "inference GMACs")):
        for curve in curves:
            x = getattr(curve, predictor)
            if x is not None:
                ax.plot([x], [curve.final_value], "o", color=colors[curve.run_id], label=curve.label)
                _error_bars(ax, [x], [estimates.get(curve.run_id)], colors[curve.run_id])
        _log_x(ax)
        ax.set_xlabel(label)
        spearman = find(predictor, "spearman")
        pearson = find(predictor, "pearson")
        if spearman is not None and pearson is not None:
            ax.set_title(
                f"Spearman ρ = {spearman.coefficient:+.3f}, Pearson r = {pearson.coefficient:+.3f}",
                fontsize="small",
            )
        _chance(ax, chance_level)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"final {metric}")
    _legend(axes[1])
    return _save(figure, path)


def category_bars(
    curves: Sequence[Curve],
    colors: dict[str, tuple],
    categories: list[str],
    metric: str,
    estimates: dict[str, dict[str, Estimate | None]],
    path: Path,
) -> Path:
    """Final per-category values: one group per category, one bar per run, with the interval from
    `estimates` (run id -> category -> Estimate or None) where there is one."""
    width_in = min(16.0, max(FIGSIZE[0], 0.25 * len(categories) * max(2, len(curves))))
    figure = Figure(figsize=(width_in, FIGSIZE[1]))
    ax = figure.add_subplot()
    positions = np.arange(len(categories))
    bar = 0.8 / max(1, len(curves))
    for i, curve in enumerate(curves):
        heights = [curve.category[name][-1] if name in curve.category else np.nan for name in categories]
        centres = positions + (i - (len(curves) - 1) / 2) * bar
        ax.bar(centres, heights, bar, color=colors[curve.run_id], label=curve.label)
        run_estimates = estimates.get(curve.run_id, {})
        _error_bars(ax, centres, [run_estimates.get(name) for name in categories], "0.2")
    ax.set_xticks(positions, categories, rotation=20, ha="right", fontsize="small")
    ax.set_ylabel(f"final {metric}")
    ax.grid(alpha=0.3, axis="y")
    _legend(ax)
    return _save(figure, path)


def sample_grid(grid: SampleGrid, path: Path) -> Path:
    """The grid at one figure pixel per grid pixel, run labels on the rows, column numbers on top."""
    height, width = grid.image.shape[:2]
    figure = Figure(figsize=(width / DPI, height / DPI))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.imshow(grid.image, interpolation="nearest")
    cell_h, cell_w = grid.cell_px
    ax.set_yticks(
        [GRID_PAD_PX + r * (cell_h + GRID_PAD_PX) + cell_h / 2 for r in range(len(grid.rows))],
        [f"{row.label}\n{fmt.count(row.params)} params, step {row.step}" for row in grid.rows],
        fontsize="x-small",
    )
    ax.set_xticks(
        [GRID_PAD_PX + c * (cell_w + GRID_PAD_PX) + cell_w / 2 for c in range(len(grid.columns))],
        [str(c + 1) for c in range(len(grid.columns))],
        fontsize="small",
    )
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _save(figure, path)

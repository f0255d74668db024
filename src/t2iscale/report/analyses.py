"""What several sections of the report show, computed once per report: the laws, the factors' comparisons, the
best configuration, the metric's floor and ceiling, and one color per configuration.

Every statistic comes from the toolkit's own functions, never recomputed here: intervals from
`t2iscale.eval.intervals` (through `Configuration.estimate`), laws from `t2iscale.findings.laws.frontier_law`,
comparisons from `t2iscale.findings.compare.compare_factor` (with the paper's stated directions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.eval.intervals import DEFAULT_LEVEL, Estimate
from t2iscale.eval.metrics import metric_info
from t2iscale.findings.arms import law_scope
from t2iscale.findings.laws import LawResult, frontier_law, study_law
from t2iscale.report import plots
from t2iscale.report.collect import StudyData
from t2iscale.report.reference import Ceiling, ShapesEval, category_chance, oracle_ceiling, shapes_eval
from t2iscale.scaling.arms import Configuration
from t2iscale.scaling.compare import NOT_SEPARABLE, Comparison
from t2iscale.study.spec import GRID_FACTORS

LEVEL = DEFAULT_LEVEL  # of every interval on the page


@dataclass(frozen=True)
class FactorResult:
    """The comparisons of one factor (`t2iscale compare --by FACTOR`), or why there are none."""

    factor: str
    pairs: list  # t2iscale.findings.compare.PairResult
    reason: str | None = None
    declared: bool = True  # named in the spec's `factors`; False: a grid axis the study varies


def primary(pair) -> Comparison:
    """The comparison a pair's verdict is read at: where the paper reads its finding, else at the matched step,
    else the first matched axis where the arms meet."""
    if pair.finding is not None:
        return pair.comparison(pair.finding.matched)
    for comparison in pair.comparisons:
        if comparison.comparable:
            return comparison
    return pair.comparisons[0]


AXIS_TEXT = {"step": "step", "compute": "compute C", "params": "parameters N"}


def at_text(comparison: Comparison) -> str:
    """'step 900', 'compute C = 2.4e12', 'parameters N = 4.1e5'."""
    if comparison.at is None:
        return f"matched {AXIS_TEXT[comparison.axis]}"
    if comparison.axis == "step":
        return f"step {comparison.at:.0f}"
    return f"{AXIS_TEXT[comparison.axis]} = {plots.short_number(comparison.at)}"


def effect_text(estimate: Estimate) -> str:
    return f"{estimate.value:+.3f} [{estimate.lo:+.3f}, {estimate.hi:+.3f}]"


def separated(comparison: Comparison) -> bool:
    return comparison.comparable and comparison.verdict != NOT_SEPARABLE


class Analyses:
    """The study's data with the analyses the sections share, each computed on first use."""

    def __init__(self, data: StudyData, out_dir: Path | None = None):
        self.data = data
        self.out_dir = out_dir
        self.info = metric_info(data.metric)

    # -- floor and ceiling ---------------------------------------------------------------------------------

    @cached_property
    def shapes(self) -> ShapesEval | None:
        return shapes_eval(self.data.config())

    @cached_property
    def ceiling(self) -> Ceiling:
        if self.out_dir is None:
            return Ceiling(None, {}, "not measured")
        return oracle_ceiling(self.shapes, self.data.metric, self.out_dir)

    @cached_property
    def category_chance(self) -> dict[str, float]:
        return category_chance(self.shapes) if self.data.metric == "tifa" else {}

    @cached_property
    def refs(self) -> plots.References:
        return plots.References(self.data.chance_level, self.ceiling.value, self.info.value_range)

    # -- configurations ------------------------------------------------------------------------------------

    @cached_property
    def colors(self) -> dict[str, tuple]:
        """Configuration key -> color, by size."""
        return plots.colors_by_size([c.key for c in self.data.configurations])

    def run_color(self, run_id: str):
        configuration = self.data.configuration_of(run_id)
        return "0.5" if configuration is None else self.colors[configuration.key]

    @cached_property
    def run_styles(self) -> dict[str, str]:
        return plots.seed_styles([[run.run_id for run in c.runs] for c in self.data.configurations])

    def estimate(self, configuration: Configuration, step: int | None = None, category: str | None = None):
        """A configuration's value at `step` (its final step by default) with its interval; None without
        per-image scores. UserError when no interval can be made (e.g. a category of one prompt)."""
        step = configuration.final_step if step is None else step
        return configuration.estimate(step, LEVEL, self.info.value_range, category=category)

    def final_estimate(self, configuration: Configuration) -> Estimate | None:
        try:
            return self.estimate(configuration)
        except UserError:
            return None

    @cached_property
    def ranked(self) -> list[tuple[Configuration, float, Estimate | None]]:
        """Configurations by final value, best first (for a lower-is-better metric, lowest first)."""
        rows = []
        for configuration in self.data.configurations:
            estimate = self.final_estimate(configuration)
            value = estimate.value if estimate is not None else configuration.value(configuration.final_step)
            rows.append((configuration, value, estimate))
        sign = -1.0 if self.info.higher_is_better else 1.0
        return sorted(rows, key=lambda row: sign * row[1] if math.isfinite(row[1]) else math.inf)

    # -- laws ----------------------------------------------------------------------------------------------

    @cached_property
    def laws(self) -> dict[str, LawResult]:
        """Each law on the configurations that differ only along its axis (`study_law`), when the report reads a
        study; on every configuration otherwise."""
        study = self.data.study
        if study is None:
            return {
                axis: frontier_law(self.data.configurations, axis, self.data.metric, level=LEVEL)
                for axis in ("compute", "params", "data")
            }
        return {
            axis: study_law(study, axis, self.data.metric, level=LEVEL)
            for axis in ("compute", "params", "data")
        }

    @cached_property
    def size_configurations(self) -> list[Configuration]:
        """The configurations the correlations with size use: those of the params law's scope (`law_scope`)."""
        if self.data.study is None:
            return list(self.data.configurations)
        return law_scope(self.data.study, "params").configurations

    @cached_property
    def varies_data(self) -> bool:
        return len({p.x for p in self.laws["data"].candidates}) >= 2

    # -- comparisons ---------------------------------------------------------------------------------------

    @cached_property
    def factors(self) -> tuple[list[str], bool]:
        """The factors compared: the spec's `factors`, else the grid axes (other than the seed) that vary."""
        if self.data.factors:
            return self.data.factors, True
        varying = []
        for axis in GRID_FACTORS:
            if len({getattr(run, axis) for run in self.data.runs}) > 1:
                varying.append(axis)
        return varying, False

    @cached_property
    def comparisons(self) -> list[FactorResult]:
        factors, declared = self.factors
        study = self.data.study
        if study is None or not factors:
            return []
        from t2iscale.findings.compare import compare_factor

        results = []
        for factor in factors:
            try:
                results.append(FactorResult(factor, compare_factor(study, factor, LEVEL), declared=declared))
            except UserError as error:
                results.append(FactorResult(factor, [], reason=str(error), declared=declared))
        return results

    def backbone_of(self, configuration: Configuration) -> str:
        study = self.data.study
        if study is not None and configuration.key in study.records:
            return study.record(configuration.key).backbone
        return configuration.label

    def pair_between(self, first: Configuration, second: Configuration):
        """The backbone factor's pair of two configurations (oriented either way), if the study compares it."""
        names = {self.backbone_of(first), self.backbone_of(second)}
        for result in self.comparisons:
            if result.factor != "backbone":
                continue
            for pair in result.pairs:
                if {pair.arm_a.name, pair.arm_b.name} == names:
                    return pair
        return None

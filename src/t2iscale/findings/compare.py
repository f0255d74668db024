"""`compare_factor`: every pair of a factor's arms at matched step, compute and parameters, beside the paper.

The numbers come from `t2iscale.scaling.compare.compare_arms`; this module walks a study's strata and pairs,
adds the paper's stated direction where it has one (`t2iscale.scaling.published.PAPER_FINDINGS`) and renders
the result as text or JSON (`t2iscale compare`, the demo's summary.json, the report).
"""

from __future__ import annotations

from dataclasses import dataclass

from t2iscale.eval.intervals import DEFAULT_LEVEL
from t2iscale.eval.metrics import metric_info
from t2iscale.findings.arms import StudyConfigurations, factor_strata
from t2iscale.scaling.arms import MATCH_AXES, Arm
from t2iscale.scaling.compare import NOT_SEPARABLE, Comparison, compare_arms
from t2iscale.scaling.published import PAPER_FINDINGS, PaperFinding

AXIS_TITLE = {"step": "step", "compute": "compute C", "params": "params N"}


@dataclass(frozen=True)
class PairResult:
    fixed: dict  # the stratum: other grid axes and their values
    arm_a: Arm
    arm_b: Arm
    comparisons: list[Comparison]  # one per matched axis, in MATCH_AXES order
    finding: PaperFinding | None  # the paper's direction for this factor, if it states one for this pair

    def comparison(self, axis: str) -> Comparison:
        return next(c for c in self.comparisons if c.axis == axis)

    @property
    def paper_check(self) -> str | None:
        """How the paper's direction fares, read where the paper reads it: agrees / disagrees / not separable."""
        if self.finding is None:
            return None
        comparison = self.comparison(self.finding.matched)
        if not comparison.comparable:
            return f"not comparable at matched {self.finding.matched}"
        if comparison.verdict == NOT_SEPARABLE:
            return NOT_SEPARABLE
        won = comparison.effect.value > 0  # A > B
        expected = self.finding.expects(self.arm_a.name, self.arm_b.name) > 0
        return "agrees" if won == expected else "disagrees"

    def paper_text(self) -> str | None:
        if self.finding is None:
            return None
        f = self.finding
        return f"paper {f.id} ({f.source}): {f.statement}, read at matched {f.matched} -> {self.paper_check}"

    def to_dict(self) -> dict:
        return {
            "fixed": {key: value for key, value in self.fixed.items()},
            "arm_a": _arm_dict(self.arm_a),
            "arm_b": _arm_dict(self.arm_b),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "paper": None
            if self.finding is None
            else {
                "id": self.finding.id,
                "statement": self.finding.statement,
                "source": self.finding.source,
                "matched": self.finding.matched,
                "check": self.paper_check,
            },
        }


def _arm_dict(arm: Arm) -> dict:
    return {
        "name": arm.name,
        "configurations": [
            {"label": c.label, "n_seeds": c.n_seeds, "params": c.params} for c in arm.configurations
        ],
    }


def compare_factor(study: StudyConfigurations, factor: str, level: float = DEFAULT_LEVEL) -> list[PairResult]:
    """Every pair of the factor's arms in every stratum, compared at each matched axis."""
    value_range = metric_info(study.metric).value_range
    finding = PAPER_FINDINGS.get(factor)
    results = []
    for stratum in factor_strata(study, factor):
        for arm_a, arm_b in stratum.pairs(factor):
            comparisons = [compare_arms(arm_a, arm_b, axis, level, value_range) for axis in MATCH_AXES]
            relevant = finding if finding and finding.expects(arm_a.name, arm_b.name) is not None else None
            results.append(PairResult(stratum.fixed, arm_a, arm_b, comparisons, relevant))
    return results


def _x_text(comparison: Comparison) -> str:
    if comparison.at is None:
        return "-"
    if comparison.axis == "step":
        return f"{comparison.at:.0f}"
    return f"{comparison.at:.3g}"


def _p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def render_text(study: StudyConfigurations, factor: str, results: list[PairResult], level: float) -> str:
    """The human-readable table of `t2iscale compare`."""
    info = metric_info(study.metric)
    replicated = any(c.n_seeds > 1 for r in results for arm in (r.arm_a, r.arm_b) for c in arm.configurations)
    over = "prompts and training seeds" if replicated else "prompts and eval seeds, one training seed per run"
    lines = [
        f"{info.title} by {factor} in {study.study_dir}: A − B paired by prompt and eval seed, {level:.0%} "
        f"intervals over {over}"
    ]
    if len(results) > 1:
        lines.append(
            f"{len(results)} pairs × {len(MATCH_AXES)} matched axes: each interval and p is for its own comparison "
            "(no adjustment for multiple comparisons)"
        )
    current_fixed = None
    for result in results:
        if result.fixed and result.fixed != current_fixed:
            current_fixed = result.fixed
            lines.append("")
            lines.append("where " + ", ".join(f"{key} = {value}" for key, value in result.fixed.items()))
        lines.append("")
        lines.extend(_pair_lines(result, level))
    if study.left_out:
        lines.append("")
        lines.append(f"left out (no evaluation of {study.metric}): {'; '.join(study.left_out)}")
    return "\n".join(lines)


def _arm_seeds(arm) -> str:
    """How many training seeds each configuration of the arm has: '1 training seed', '3/3 training seeds'."""
    counts = "/".join(str(c.n_seeds) for c in arm.configurations)
    return f"{counts} training seed{'' if counts == '1' else 's'}"


def _pair_lines(result: PairResult, level: float) -> list[str]:
    lines = [
        f"A = {result.arm_a.name} ({_arm_size(result.arm_a)}, {_arm_seeds(result.arm_a)})   "
        f"B = {result.arm_b.name} ({_arm_size(result.arm_b)}, {_arm_seeds(result.arm_b)})",
        f"  {'matched':<10} {'at':>9}  {'A':<21} {'B':<21} {'A − B':<24} {'p (t)':>7} {'p (perm.)':>9}  verdict",
    ]
    for c in result.comparisons:
        if not c.comparable:
            lines.append(f"  {AXIS_TITLE[c.axis]:<10} {'-':>9}  not comparable: {c.reason}")
            continue
        effect = c.effect
        lines.append(
            f"  {AXIS_TITLE[c.axis]:<10} {_x_text(c):>9}  {_marked(c.a):<21} {_marked(c.b):<21} "
            f"{effect.value:+.3f} [{effect.lo:+.3f}, {effect.hi:+.3f}]  {_p_text(c.p_value):>7} "
            f"{_p_text(c.p_permutation):>9}  {c.verdict}"
        )
    comparable = [c for c in result.comparisons if c.comparable]
    if not comparable:
        return lines + ([f"  {result.paper_text()}"] if result.paper_text() else [])
    first = comparable[0].effect
    dfs = ", ".join(f"{AXIS_TITLE[c.axis]} {c.effect.df:.3g}" for c in comparable)
    lines.append(f"  {first.n_text()}; t intervals over {first.covers}; df {dfs}")
    if any(c.a.clipped or c.b.clipped for c in comparable):
        lines.append("  *: interval cut at the metric's range")
    lines.append(f"  p (perm.): {comparable[0].permutation_method}")
    for c in comparable:
        floor = c.p_permutation_floor
        if c.verdict != NOT_SEPARABLE and floor is not None and floor >= 1 - level:
            lines.append(
                f"  caution ({AXIS_TITLE[c.axis]}): the exact test over runs cannot go below p = {floor:.2g} with "
                "this many runs; the verdict rests on the t model over prompts and seeds"
            )
    for c in comparable:
        if any(" + " in text for text in c.read_as):
            lines.append(f"  read at {AXIS_TITLE[c.axis]}: A = {c.read_as[0]}; B = {c.read_as[1]}")
    if result.paper_text():
        lines.append(f"  {result.paper_text()}")
    return lines


def _marked(estimate) -> str:
    return estimate.text() + ("*" if estimate.clipped else "")


def _arm_size(arm: Arm) -> str:
    params = [c.params for c in arm.configurations if c.params]
    if not params:
        return "size unknown"
    if len(params) == 1:
        return f"{params[0] / 1e6:.3g}M params"
    return f"{len(params)} backbones, {min(params) / 1e6:.3g}M-{max(params) / 1e6:.3g}M params"


def to_json(study: StudyConfigurations, factor: str, results: list[PairResult], level: float) -> dict:
    return {
        "study": str(study.study_dir),
        "metric": study.metric,
        "factor": factor,
        "level": level,
        "pairs": [result.to_dict() for result in results],
        "left_out": list(study.left_out),
    }

"""Findings: one panel per compared factor, from `t2iscale.findings.compare.compare_factor` (`t2iscale compare`).

A panel shows, per stratum (configurations that agree on every other grid axis):
- the arms along training compute: each arm's mean over its training seeds, the spread of those seeds (dark
  band), and the 95% interval over prompts and seeds (light band); a ladder arm (several backbones) as one
  point per backbone with its interval;
- the paired differences A − B with their intervals, each pair at the axis its verdict is read at (where the
  paper reads its finding, else the matched step);
- the table of every pair at every matched axis (step, compute, parameters) and one verdict sentence per pair,
  with the paper's stated direction beside it.
"""

from __future__ import annotations

import math

from t2iscale.errors import UserError
from t2iscale.report import html, plots
from t2iscale.report.analyses import AXIS_TEXT, LEVEL, Analyses, FactorResult, at_text, effect_text, primary
from t2iscale.report.build import ReportOptions, figure_path
from t2iscale.scaling.arms import Arm
from t2iscale.scaling.compare import NOT_SEPARABLE


def arm_curve(analyses: Analyses, arm: Arm) -> plots.ArmCurve:
    """An arm along training compute with its interval and seed spread at each point."""
    if arm.is_ladder:
        readings = [(c, c.final_step) for c in arm.configurations]
    else:
        (configuration,) = arm.configurations
        readings = [(configuration, step) for step in configuration.steps]
    rows = []
    for configuration, step in readings:
        x = configuration.train_flops(step)
        if not (x and x > 0):
            continue
        try:
            estimate = analyses.estimate(configuration, step)
        except UserError:
            estimate = None
        seeds = [run.values[run.steps.index(step)] for run in configuration.runs]
        value = configuration.value(step)
        rows.append(
            (
                x,
                value,
                math.nan if estimate is None else estimate.lo,
                math.nan if estimate is None else estimate.hi,
                min(seeds),
                max(seeds),
            )
        )
    rows.sort()
    columns = list(zip(*rows)) if rows else [[]] * 6
    # A one-configuration arm keeps its configuration's color (the same in every figure); a ladder gets its own.
    color = None if arm.is_ladder else analyses.colors.get(arm.configurations[0].key)
    return plots.ArmCurve(arm.name, *columns, ladder=arm.is_ladder, color=color)


def _stratum_title(factor: str, fixed: dict) -> str:
    where = ", ".join(f"{axis} = {value}" for axis, value in fixed.items())
    return f"{factor}" + (f" where {where}" if where else "")


def _strata(result: FactorResult) -> list[tuple[dict, list]]:
    groups: list[tuple[dict, list]] = []
    for pair in result.pairs:
        if groups and groups[-1][0] == pair.fixed:
            groups[-1][1].append(pair)
        else:
            groups.append((pair.fixed, [pair]))
    return groups


def _arms(pairs) -> list[Arm]:
    arms: dict[str, Arm] = {}
    for pair in pairs:
        for arm in (pair.arm_a, pair.arm_b):
            arms.setdefault(arm.name, arm)
    return list(arms.values())


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2g}" if value >= 1e-4 else "<1e-4"


def pair_rows(pairs) -> list[list[str]]:
    rows = []
    for pair in pairs:
        for c in pair.comparisons:
            if not c.comparable:
                rows.append(
                    [
                        pair.arm_a.name,
                        pair.arm_b.name,
                        AXIS_TEXT[c.axis],
                        "—",
                        "—",
                        "—",
                        "not comparable",
                        "—",
                        "—",
                        "see below",
                    ]
                )
                continue
            rows.append(
                [
                    pair.arm_a.name,
                    pair.arm_b.name,
                    AXIS_TEXT[c.axis],
                    at_text(c).split(" = ")[-1].removeprefix("step "),
                    c.a.text(),
                    c.b.text(),
                    effect_text(c.effect),
                    _p(c.p_value),
                    _p(c.p_permutation),
                    c.verdict,
                ]
            )
    return rows


def verdict_sentence(pair) -> str:
    c = primary(pair)
    if not c.comparable:
        text = f"{pair.arm_a.name} and {pair.arm_b.name} cannot be compared at matched {AXIS_TEXT[c.axis]}: {c.reason}."
    else:
        outcome = (
            "the interval holds 0, so the two are not separable at this budget"
            if c.verdict == NOT_SEPARABLE
            else f"{c.verdict}"
        )
        text = (
            f"At {at_text(c)}, {pair.arm_a.name} − {pair.arm_b.name} = {effect_text(c.effect)} "
            f"(p = {_p(c.p_value)}): {outcome}."
        )
        floor = c.p_permutation_floor
        if c.verdict != NOT_SEPARABLE and floor is not None and floor >= 1 - LEVEL:
            text += (
                f" The exact test over runs cannot go below p = {floor:.2g} with this many runs: the verdict rests "
                "on the t model over prompts and seeds."
            )
    if pair.finding is not None:
        f = pair.finding
        text += f" The paper ({f.id}, {f.source}): {f.statement}, read at matched {f.matched}: {pair.paper_check}."
    return text


def factor_panel(analyses: Analyses, options: ReportOptions, result: FactorResult, index: int) -> str:
    title = result.factor.replace("_", " ")
    body = html.heading(f"{title}", 3, f"finding-{result.factor}")
    if not result.declared:
        body += html.paragraph(
            f"The study's spec declares no factors (`factors = [...]`); {result.factor} is a grid axis it varies."
        )
    if result.reason:
        return body + html.note(f"Not compared: {result.reason}")
    for s, (fixed, pairs) in enumerate(_strata(result)):
        name = f"finding_{index}_{s}"
        curves = [arm_curve(analyses, arm) for arm in _arms(pairs)]
        curves_path = plots.arm_curves(
            curves,
            analyses.data.metric,
            analyses.refs,
            _stratum_title(title, fixed),
            figure_path(options, name),
        )
        differences = [
            plots.Difference(
                f"{pair.arm_a.name} − {pair.arm_b.name}\n{at_text(primary(pair))}",
                primary(pair).effect if primary(pair).comparable else None,
                primary(pair).verdict or "",
            )
            for pair in pairs
        ]
        differences_path = plots.differences(differences, figure_path(options, f"{name}_differences"))
        seeds = max(c.n_seeds for arm in _arms(pairs) for c in arm.configurations)
        body += html.figures(
            html.figure(
                curves_path.name,
                f"{analyses.data.metric} of the arms of {title} against training compute",
                f"Each arm of {title} against training compute (log scale): the line is its mean over its training "
                "seeds, the dark band the range of its seeds"
                + (" (one seed: no band)" if seeds == 1 else "")
                + f", the light band the {LEVEL:.0%} interval over prompts and training seeds. An arm of several "
                "backbones is one point per backbone (its final evaluation) with its interval. Dashed: chance.",
            ),
            html.figure(
                differences_path.name,
                f"paired differences between the arms of {title}",
                f"Each pair's difference A − B with its {LEVEL:.0%} interval, paired by prompt and eval seed, at "
                "the axis its verdict is read at; blue: separated from 0.",
            ),
        )
        body += html.items([verdict_sentence(pair) for pair in pairs])
        body += html.table(
            [
                "A",
                "B",
                "matched",
                "at",
                "A [95% CI]",
                "B [95% CI]",
                "A − B [95% CI]",
                "p (t)",
                "p (perm.)",
                "verdict",
            ],
            pair_rows(pairs),
            [False, False, False, True, True, True, True, True, True, False],
        )
        comparable = [c for pair in pairs for c in pair.comparisons if c.comparable]
        notes = []
        if comparable:
            first = comparable[0].effect
            notes.append(
                f"{first.n_text()}; {LEVEL:.0%} t intervals over {first.covers}. p (perm.): "
                f"{comparable[0].permutation_method}."
            )
        if len(pairs) * len(pairs[0].comparisons) > 1:
            notes.append(
                "Each interval and p is for its own comparison; nothing is adjusted for multiple comparisons."
            )
        reasons = sorted(
            {
                f"{pair.arm_a.name} vs {pair.arm_b.name} at matched {AXIS_TEXT[c.axis]}: {c.reason}"
                for pair in pairs
                for c in pair.comparisons
                if not c.comparable
            }
        )
        body += html.paragraph(" ".join(notes))
        if reasons:
            body += html.details(
                f"Comparisons that cannot be made, and why ({len(reasons)})",
                html.items([f"{r}." for r in reasons]),
            )
    return body


def findings_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    results = analyses.comparisons
    if not results:
        factors, _ = analyses.factors
        why = (
            "the study declares no factors and varies no grid axis other than the seed"
            if not factors
            else "the study's configurations could not be read for comparison"
        )
        return html.Section("findings", "Findings", html.note(f"No comparisons: {why}."))
    body = html.paragraph(
        "Each factor's arms compared as `t2iscale compare --by FACTOR` does: paired by prompt and eval seed, at "
        "matched step, training compute and parameters (interpolating in log X, never extrapolating), with the "
        "paper's stated direction where it has one."
    )
    body += "".join(factor_panel(analyses, options, result, i) for i, result in enumerate(results))
    return html.Section("findings", "Findings", body)

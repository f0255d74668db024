"""The headline: the study's question and its answers, first on the page (DESIGN.md "Results").

Answers, each with its interval and n where it has one: the fitted laws (the exponent b and its interval; a law
that cannot be fitted says why), the verdict of every compared pair beside the paper's stated direction, the best
configuration, the study's bars (from `summary.json`, written by `t2iscale demo`) with pass/fail, and the metric's
floor (chance) and ceiling (the oracle on ground-truth renders). The compute panel sits beside them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from t2iscale.eval.intervals import Estimate
from t2iscale.findings.laws import LawResult
from t2iscale.report import fmt, html
from t2iscale.report.analyses import Analyses, at_text, effect_text, primary
from t2iscale.report.build import LEVEL, ReportOptions, configurations_text, exponent_text, law_figure
from t2iscale.scaling.published import PUBLISHED_LAWS

MAX_HEADLINE_PAIRS = 6  # per factor; the findings section lists every pair

FACTOR_QUESTIONS = {
    "backbone": "which backbone aligns best",
    "layout": "does SDXL's UNet layout beat SD2's at equal training compute (paper F1)",
    "scaling": "does adding transformer depth beat adding channels at equal parameters (paper F2)",
    "caption_policy": "which captions align best (paper F3: synthetic or mixed over alt-text)",
    "dataset_size": "does more training data align better (paper F4)",
}
LAW_NAMES = {"compute": "Compute law", "params": "Parameter law", "data": "Data law"}


def question(analyses: Analyses) -> str:
    axes = "training compute C and parameters N" + (" and data D" if analyses.varies_data else "")
    parts = [f"How does {analyses.info.title} grow with {axes}"]
    factors, _ = analyses.factors
    parts += [FACTOR_QUESTIONS.get(factor, f"how do the levels of {factor} compare") for factor in factors]
    return ", and ".join(parts) + "?"


def study_line(analyses: Analyses) -> str:
    data = analyses.data
    scoped = any(law.scope for law in analyses.laws.values())
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(data.status_counts().items()))
    setting = ""
    if analyses.shapes is not None:
        config = data.config()
        budget, recipe = config.get("budget", {}), config.get("recipe", {})
        setting = (
            f" Shapes world {analyses.shapes.world!r} at {analyses.shapes.resolution} px, "
            f"{fmt.count(budget.get('total_steps'))} steps × {recipe.get('global_batch')} images per run."
        )
    return (
        f"Study {data.name}: {len(data.runs)} runs ({statuses}); {len(data.curves)} evaluated on {data.metric}."
        f"{setting} {configurations_text(data.configurations, data.metric, scoped)}"
    )


def law_answer(law: LawResult) -> str:
    title = LAW_NAMES[law.axis.name]
    text = exponent_text(law)
    if law.fit is not None:
        lo, hi = law.fit.interval("b")
        if lo <= 0 <= hi:
            text += "; the interval holds 0: this budget cannot tell whether the metric rises along this axis"
        published = PUBLISHED_LAWS.get(law.axis.name)
        if published is not None and law.metric == "tifa":
            text += f" (paper, Sec. 6: b = {published.b:g})"
    return html.join(html.strong(title), ": ", text.rstrip(".") + ".")


def _flip(estimate: Estimate) -> Estimate:
    return dataclasses.replace(estimate, value=-estimate.value, lo=-estimate.hi, hi=-estimate.lo)


def pair_answer(pair) -> str:
    comparison = primary(pair)
    head = f"{pair.arm_a.name} − {pair.arm_b.name}"
    if not comparison.comparable:
        text = f"{head}: not comparable ({comparison.reason})"
    else:
        text = f"{head} at {at_text(comparison)}: {effect_text(comparison.effect)} → {comparison.verdict}"
    if pair.finding is not None:
        f = pair.finding
        text += f"; paper {f.id} ({f.source}): {f.statement} → {pair.paper_check}"
    return text


def findings_answers(analyses: Analyses) -> list[str]:
    answers = []
    for result in analyses.comparisons:
        title = html.strong(result.factor.replace("_", " "))
        origin = "" if result.declared else " (a grid axis the study varies; the spec declares no factors)"
        if result.reason:
            answers.append(html.join(title, f"{origin}: not compared: {result.reason}."))
            continue
        shown = result.pairs[:MAX_HEADLINE_PAIRS]
        more = len(result.pairs) - len(shown)
        lines = [pair_answer(pair) for pair in shown]
        if more:
            lines.append(f"… and {more} more pairs in Findings")
        answers.append(
            html.join(
                title,
                f"{origin}: paired by prompt and eval seed, {LEVEL:.0%} intervals",
                html.items(lines),
            )
        )
    return answers


def best_answer(analyses: Analyses) -> str | None:
    ranked = analyses.ranked
    if not ranked:
        return None
    best, value, estimate = ranked[0]
    title = html.strong("Best model")
    shown = fmt.metric_value(value) if estimate is None else fmt.estimate(estimate)
    seeds = f"{best.n_seeds} training seed{'s' if best.n_seeds != 1 else ''}"
    text = (
        f"{best.label} ({fmt.count(best.params)} params): {analyses.info.title} {shown} at step {best.final_step}, "
        f"{seeds}"
    )
    if estimate is not None:
        text += f" (interval over {estimate.covers})"
    if len(ranked) > 1:
        runner, runner_value, runner_estimate = ranked[1]
        runner_shown = (
            fmt.metric_value(runner_value) if runner_estimate is None else fmt.estimate(runner_estimate)
        )
        text += f"; next: {runner.label} {runner_shown}"
        pair = analyses.pair_between(best, runner)
        if pair is not None:
            comparison = primary(pair)
            if comparison.comparable:
                effect = comparison.effect
                if pair.arm_a.name != analyses.backbone_of(best):
                    effect = _flip(effect)
                text += (
                    f", best − next at {at_text(comparison)}: {effect_text(effect)} → {comparison.verdict}"
                )
    return html.join(title, ": ", text + ".")


BAR_NAMES = {
    "largest_margin_over_chance": "the largest model's margin over chance",
    "spearman": "Spearman(params, TIFA)",
    "spearman_p": "Spearman(params, TIFA), exact p",
    "largest_above_smallest": "largest − smallest model, low end of its 95% interval",
}


@dataclass(frozen=True)
class Bar:
    name: str  # how the headline names it
    value: float | None
    bar: float | None  # the threshold
    passed: bool


def bar_rows(summary: dict | None) -> list[Bar]:
    """The bars of summary.json: `bars = {"<name>": {"label", "value", "bar", "ok"}}` (`t2iscale demo` writes it)."""
    if not summary or not isinstance(summary.get("bars"), dict):
        return []
    rows = []
    for key, entry in summary["bars"].items():
        if isinstance(entry, dict) and isinstance(entry.get("ok"), bool):
            label = entry.get("label") or BAR_NAMES.get(key, key.replace("_", " "))
            rows.append(Bar(str(label), _number(entry.get("value")), _number(entry.get("bar")), entry["ok"]))
    return rows


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def bars_answer(analyses: Analyses) -> str:
    rows = bar_rows(analyses.data.summary)
    title = html.strong("Bars")
    if not rows:
        source = "summary.json has none" if analyses.data.summary else "no summary.json"
        return html.join(
            title, f": none set for this study ({source}; `t2iscale demo` writes its bars there)."
        )
    lines = []
    for (
        row
    ) in rows:  # "<label> <bar>: <value>: pass", e.g. "largest model's TIFA over chance, at least 0.25: 0.23"
        text = row.name if row.bar is None else f"{row.name} {row.bar:g}"
        text += ": –" if row.value is None else f": {row.value:.3g}"
        verdict = html.span("pass", "pass") if row.passed else html.span("FAIL", "fail")
        lines.append(html.join(text + ": ", verdict))
    return html.join(title, " (from the study's summary.json):", html.items(lines))


def floor_ceiling_answer(analyses: Analyses) -> str:
    title = html.strong("Floor and ceiling")
    chance = analyses.data.chance_level
    floor = (
        f"floor {chance:.3f}, the chance level (a uniform guesser's {analyses.info.title} on the study's questions)"
        if chance is not None
        else "no chance level recorded"
    )
    ceiling = analyses.ceiling
    if ceiling.value is not None:
        top = f"ceiling {ceiling.value:.3f}, {ceiling.how}"
        if ceiling.noise is not None:
            top += f"; pure noise images score {ceiling.noise:.3f}"
    else:
        top = f"ceiling {ceiling.how}"
    return html.join(title, f": {floor}; {top}.")


def headline_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data = analyses.data
    answers = [law_answer(analyses.laws["compute"]), law_answer(analyses.laws["params"])]
    if analyses.varies_data:
        answers.append(law_answer(analyses.laws["data"]))
    answers += findings_answers(analyses)
    best = best_answer(analyses)
    if best:
        answers.append(best)
    answers += [bars_answer(analyses), floor_ceiling_answer(analyses)]
    if data.left_out:
        answers.append(f"Not yet evaluated, so not in these answers: {'; '.join(data.left_out)}.")
    left = html.paragraph(html.join(html.strong("Question: "), question(analyses)), "question")
    description = (data.spec or {}).get("description")
    if description:
        left += html.paragraph(html.join(html.strong("The study: "), str(description)))
    left += html.paragraph(study_line(analyses)) + html.items(answers, css_class="answers")
    law = analyses.laws["compute"]
    right = ""
    if law.candidates:
        path, _ = law_figure(analyses, law, options, "compute_frontier")
        right = html.figure(
            path.name,
            f"{data.metric} vs training FLOPs: configurations, Pareto frontier and fitted law",
            f"{analyses.info.title} against training compute, each configuration's evaluations with their "
            f"{LEVEL:.0%} intervals, the frontier (rings) and the law with its band; details in "
            f"“{analyses.info.title} vs training compute” below.",
        )
    return html.Section(
        "headline",
        "Headline: the question and its answers",
        html.div(
            html.div(left, "answers-column") + (html.div(right, "figure-column") if right else ""),
            "headline-grid",
        ),
    )

"""The report's "Judge audit" section: how wrong the study's VQA judge is, measured against the exact oracle.

Shown when the study holds a judge audit (`<study>/audit/judge_audit.json`, written by `t2iscale eval
audit-judge`; `t2iscale.findings.judge_audit` explains what it measures); a study without one has no such section
(its TIFA, by the oracle, has no judge error to audit). The section shows, on ground-truth renders and on the
study's generated images: accuracy per category and element type with 95% intervals over prompts, the yes-bias,
the reliability curves with their ECE and counts, VQAScore on own and foil prompts; then the judge-minus-oracle gap
along training per run, and whether the judge ranks the configurations as the oracle does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from t2iscale.errors import UserError
from t2iscale.findings.judge_audit import default_audit_path, read_audit
from t2iscale.report import html, plots

SCORE_TITLES = {"tifa": "hard TIFA", "soft_tifa": "Soft-TIFA", "vqascore": "VQAScore"}
ORACLE_TITLES = {"tifa": "oracle TIFA", "soft_tifa": "oracle TIFA", "vqascore": "oracle strict accuracy"}


def _cell(entry: dict | None) -> str:
    """'0.812 [0.770, 0.854]', '0.812 (1 prompt: no interval)' or '–'."""
    if entry is None:
        return "–"
    if entry.get("lo") is None:
        return f"{entry['value']:.3f} (no interval)"
    return f"{entry['value']:.3f} [{entry['lo']:.3f}, {entry['hi']:.3f}]"


def _parts(audit: dict) -> list[tuple[str, dict]]:
    parts = [("ground-truth renders", audit["renders"]["summary"])]
    if audit.get("study"):
        parts.append(("generated images", audit["study"]["summary"]))
    return parts


def _why_none(parts: Sequence[tuple[str, dict]]) -> str:
    reasons = set()

    def collect(entry):
        if isinstance(entry, dict):
            if entry.get("why_no_interval"):
                reasons.add(entry["why_no_interval"])
            for value in entry.values():
                collect(value)

    for _, summary in parts:
        collect(summary)
    return (" Values without an interval: " + "; ".join(sorted(reasons)) + ".") if reasons else ""


@plots.styled
def reliability_figure(curves: Sequence[tuple[str, dict]], path: Path) -> Path:
    """Observed frequency against mean probability per non-empty bin, one line per curve; the diagonal is
    perfect calibration, marker area grows with the bin's count."""
    figure = Figure(figsize=(plots.WIDTH_IN, 3.8))
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", linewidth=1, linestyle="--", label="perfectly calibrated")
    for (label, calibration), color in zip(curves, plots.ARM_COLORS):
        bins = [b for b in calibration["bins"] if b["n"]]
        if not bins:
            continue
        xs = [b["mean_probability"] for b in bins]
        ys = [b["frequency"] for b in bins]
        sizes = [12 + 60 * b["n"] / calibration["n"] for b in bins]
        ece = calibration["ece"]
        ax.plot(xs, ys, color=color, linewidth=1.2, label=f"{label} (ECE {ece:.3f}, n = {calibration['n']})")
        ax.scatter(xs, ys, s=sizes, color=color, zorder=3)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("judge's probability (bin mean)")
    ax.set_ylabel("observed frequency")
    plots._legend_below(figure, ax, columns=1)
    return plots.save(figure, path)


def _accuracy_table(parts) -> str:
    headers = [
        "",
        *[f"{where}: accuracy [95% CI]" for where, _ in parts],
        *[f"{w}: answers" for w, _ in parts],
    ]
    rows = [
        ["all questions", *[_cell(s["accuracy"]) for _, s in parts], *[str(s["n_answers"]) for _, s in parts]]
    ]
    for group, title in (("by_category", "category"), ("by_element_type", "element type")):
        names = sorted({name for _, s in parts for name in s[group]})
        for name in names:
            entries = [s[group].get(name) for _, s in parts]
            rows.append(
                [
                    f"{title}: {name}",
                    *[_cell(e["accuracy"] if e else None) for e in entries],
                    *[str(e["n_answers"]) if e else "0" for e in entries],
                ]
            )
    rows.append(
        [
            "soft accuracy (mean P of the oracle's answer)",
            *[_cell(s["soft_accuracy"]) for _, s in parts],
            *["" for _ in parts],
        ]
    )
    return html.table(headers, rows, [False] + [True] * 2 * len(parts))


def _yes_no_table(parts) -> str:
    rows = []
    for key, title in (
        ("judge_yes_rate", "judge says yes"),
        ("oracle_yes_rate", "oracle says yes"),
        ("yes_bias", "yes-bias (judge − oracle)"),
        ("false_yes_rate", "false yes (judge yes | oracle no)"),
        ("false_no_rate", "false no (judge no | oracle yes)"),
    ):
        rows.append([title, *[_cell(s["yes_no"][key]) for _, s in parts]])
    rows.append(["yes/no answers", *[str(s["yes_no"]["n_answers"]) for _, s in parts]])
    return html.table(["", *[where for where, _ in parts]], rows, [False] + [True] * len(parts))


def _vqascore_table(parts) -> str:
    parts = [(w, s) for w, s in parts if "vqascore" in s]
    if not parts:
        return ""
    rows = [
        [
            "whole-prompt questions (foils)",
            *[f"{s['vqascore']['n_questions']} ({s['vqascore']['n_foils']})" for _, s in parts],
        ],
        [
            "oracle: the image shows the prompt",
            *[f"{s['vqascore']['oracle_yes_share']:.3f}" for _, s in parts],
        ],
        ["accuracy (P(yes) ≥ 0.5 vs oracle)", *[_cell(s["vqascore"]["accuracy"]) for _, s in parts]],
        [
            "mean P(yes) where the image shows it",
            *[_cell(s["vqascore"]["mean_p_yes_when_shown"]) for _, s in parts],
        ],
        [
            "mean P(yes) where it does not",
            *[_cell(s["vqascore"]["mean_p_yes_when_not_shown"]) for _, s in parts],
        ],
        ["ECE of P(yes)", *[_ece(s["vqascore"]["calibration"]) for _, s in parts]],
    ]
    return html.table(["VQAScore", *[where for where, _ in parts]], rows, [False] + [True] * len(parts))


def _ece(calibration: dict) -> str:
    return "–" if calibration["ece"] is None else f"{calibration['ece']:.3f} (n = {calibration['n']})"


def _bins_table(curves) -> str:
    rows = []
    for label, calibration in curves:
        for b in calibration["bins"]:
            if b["n"]:
                rows.append(
                    [
                        label,
                        f"{b['lo']:.1f}–{b['hi']:.1f}",
                        str(b["n"]),
                        f"{b['mean_probability']:.3f}",
                        f"{b['frequency']:.3f}",
                    ]
                )
    return html.table(
        ["curve", "bin", "n", "mean probability", "observed frequency"],
        rows,
        [False, False, True, True, True],
    )


def _training_table(study: dict) -> str:
    rows = []
    for run in study["runs"]:
        for step in run["steps"]:
            row = [run["label"], str(step["step"]), str(step["n_images"])]
            for name in SCORE_TITLES:
                entry = step[name]
                row += [_cell(entry["judge"]), _cell(entry["oracle"]), _cell(entry["gap"])]
            rows.append(row)
    headers = ["run", "step", "images"]
    for name, title in SCORE_TITLES.items():
        headers += [f"{title} (judge)", ORACLE_TITLES[name], f"gap {title} − {ORACLE_TITLES[name]}"]
    return html.table(headers, rows, [False, True, True] + [True] * 3 * len(SCORE_TITLES))


def _spearman_text(entry: dict) -> str:
    if "why" in entry:
        return entry["why"]
    return f"{entry['coefficient']:+.3f} (p = {entry['p_value']:.3g}, {entry['p_method']}, n = {entry['n']})"


def _ranking_html(study: dict) -> str:
    body = ""
    for name, entry in study["ranking"].items():
        title = SCORE_TITLES[name]
        body += html.heading(f"Ranking by {title}", level=4)
        if "why" in entry:
            body += html.note(entry["why"])
            continue
        body += html.items(
            [
                f"Spearman of the configurations' {title} by the judge with {ORACLE_TITLES[name]}: "
                + _spearman_text(entry["spearman_judge_oracle"]),
                "Spearman with parameters: judge "
                + _spearman_text(entry["spearman_with_params"]["judge"])
                + "; oracle "
                + _spearman_text(entry["spearman_with_params"]["oracle"]),
                f"{entry['n_flipped']} of {len(entry['pairs'])} pairs flipped by the judge, "
                f"{entry['n_flipped_separable']} of them pairs the oracle separates (its interval excludes 0).",
            ]
        )
        rows = [
            [
                pair["a"],
                pair["b"],
                _cell(pair["oracle_difference"]),
                _cell(pair["judge_difference"]),
                "yes" if pair["flipped"] else "no",
            ]
            for pair in entry["pairs"]
        ]
        body += html.table(
            [
                "A",
                "B",
                f"A − B by the oracle ({ORACLE_TITLES[name]})",
                f"A − B by the judge ({title})",
                "flipped",
            ],
            rows,
            [False, False, True, True, False],
        )
    return body


def audit_section(analyses, options) -> html.Section | None:
    """The judge audit of the study, or None when the study has none."""
    from t2iscale.report.build import figure_path

    path = default_audit_path(analyses.data.study_dir)
    if not path.is_file():
        return None
    try:
        audit = read_audit(path)
    except UserError as error:
        return html.Section("judge-audit", "Judge audit", html.note(str(error)))
    parts = _parts(audit)
    level = audit.get("level", 0.95)
    renders = audit["renders"]
    body = html.paragraph(
        f"The judge ({audit['judge']['questions']}; VQAScore by {audit['judge']['prompts']}) against the shapes "
        f"world's exact oracle ({audit['world']}), from `t2iscale eval audit-judge` ({path.name}). Ground truth: "
        f"{renders['per_category']} prompt(s) per category × {renders['seeds']} layout(s) rendered at "
        f"{renders['resolution']} px. A judge's answer is right when it is the oracle's answer about the same "
        f"image (not the prompt's answer key, which a generated image may not show). Rates are means of per-image "
        f"shares with their {level:.0%} t interval over prompts (a prompt's images averaged first)."
        + _why_none(parts)
    )
    body += html.heading("Accuracy against the oracle")
    body += _accuracy_table(parts)
    body += html.heading("Yes-bias on yes/no questions")
    body += _yes_no_table(parts)
    body += html.heading("Calibration")
    curves = [(f"answers, {where}", s["calibration"]) for where, s in parts]
    curves += [
        (f"VQAScore P(yes), {where}", s["vqascore"]["calibration"]) for where, s in parts if "vqascore" in s
    ]
    figure = reliability_figure(curves, figure_path(options, "judge_reliability"))
    body += html.figure(
        figure.name,
        "reliability curves of the judge",
        "Reliability: per bin of the judge's probability (10 equal-width bins; answers: the probability of its own "
        "answer, right when it is the oracle's; VQAScore: P(yes), right when the oracle finds every question of the "
        "prompt answered as keyed), the share that was right. Marker area: the bin's count. ECE = Σ (n_b/n) "
        "|frequency_b − probability_b|; it has no interval, since several answers come from one image and one "
        "prompt; its n is the number of answers (or whole-prompt questions) binned.",
    )
    body += html.details("The reliability bins with their counts", _bins_table(curves))
    body += _vqascore_table(parts)
    study = audit.get("study")
    if study:
        body += html.heading("Judge minus oracle along training")
        body += html.paragraph(
            "Per run and evaluation step: the judge's score, the oracle's score it estimates, and their paired "
            f"difference image by image, each with its {level:.0%} interval over prompts (within the run's "
            "training seed)."
        )
        body += _training_table(study)
        body += html.heading("Does the judge's error change the study's ranking?")
        body += html.paragraph(
            "Configurations (runs pooled over training seeds) at their last audited step. Differences are paired "
            f"by prompt and eval seed, with {level:.0%} t intervals over prompts and training seeds."
        )
        body += _ranking_html(study)
        if study.get("skipped"):
            body += html.note("Runs not audited: " + "; ".join(study["skipped"]) + ".")
    return html.Section("judge-audit", "Judge audit", body)

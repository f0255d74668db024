"""`t2iscale eval audit-judge`: a VQA judge against the exact oracle, on ground-truth renders and on a study.

What the audit answers (the judge-level measures are `t2iscale.eval.audit`'s):
1. On ground-truth renders of the shapes world's evaluation prompts: the judge's accuracy per GenEval category
   and per element type, its yes-bias, its calibration (reliability curve, ECE), VQAScore on own and foil prompts.
2. On a study's generated images (every evaluation step of every run that used a shapes prompt set): the same
   measures, and per run and step the judge's scores (hard TIFA, Soft-TIFA, VQAScore) beside the oracle's with
   the paired gap judge - oracle: how the judge's error moves along training.
3. Across the study's configurations (runs pooled over training seeds, `t2iscale.findings.arms`' grouping) at
   each run's last audited step: does the judge rank the models as the oracle does? The Spearman correlation of
   the configurations' judge scores with their oracle scores (exact permutation p, `t2iscale.scaling.correlation`,
   from 3 configurations), each score's Spearman with parameters, and for every pair of configurations the paired
   difference by the oracle and by the judge (95% t intervals over prompts and training seeds,
   `t2iscale.eval.intervals.combine`), flagged when the judge flips the oracle's order. A flip of a pair the
   oracle separates (its interval excludes 0) changes a study's conclusion; a flip of an inseparable pair does
   not.

The result is one JSON file, `<study>/audit/judge_audit.json` by default, which the report shows as its own
section (`t2iscale.report.audit`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.audit import (
    DIFFERENCE,
    GAP_PAIRS,
    JudgedImage,
    audit_manifest,
    audit_renders,
    gap_estimates,
    interval_text,
    samples_of,
    summarize,
)
from t2iscale.eval.intervals import DEFAULT_LEVEL, combine, per_prompt_scores
from t2iscale.eval.judges import Judges, oracle_judge
from t2iscale.findings.arms import CONFIGURATION_AXES, configuration_label
from t2iscale.scaling.correlation import MIN_RUNS, correlation_test
from t2iscale.study.results import RunRecord, load_runs, varying_axes

AUDIT_FILE = Path("audit") / "judge_audit.json"
SHAPES_PROMPTS = "shapes-"
STEP_DIR = re.compile(r"step_(\d+)$")


def default_audit_path(study_dir: str | Path) -> Path:
    return Path(study_dir) / AUDIT_FILE


@dataclass
class RunTarget:
    """One run's evaluations that the oracle can read: its shapes world and prompt set, its step folders."""

    record: RunRecord
    world: str
    version: str
    per_category: int
    steps: list[tuple[int, Path]]  # (step, manifest)


def study_targets(study_dir: str | Path) -> tuple[list[RunTarget], list[str]]:
    """Every run with evaluated images on a shapes prompt set, and why each other run is left out."""
    study_dir = Path(study_dir)
    if not (study_dir / "study.sqlite").is_file():
        raise UserError(f"{str(study_dir)!r} is not a study folder (no study.sqlite)")
    targets, skipped = [], []
    for record in load_runs(study_dir):
        evaluation, data = record.config.get("eval", {}), record.config.get("data", {})
        prompts = str(evaluation.get("prompts", ""))
        if data.get("kind", "shapes") != "shapes" or not prompts.startswith(SHAPES_PROMPTS):
            skipped.append(
                f"{record.run_id}: prompt set {prompts!r} is not the shapes world's; no oracle reads it"
            )
            continue
        steps = []
        for manifest in sorted((record.run_dir / "eval").glob("step_*/manifest.jsonl")):
            match = STEP_DIR.match(manifest.parent.name)
            if match:
                steps.append((int(match.group(1)), manifest))
        if not steps:
            skipped.append(f"{record.run_id}: no evaluated images yet ({record.status})")
            continue
        targets.append(
            RunTarget(
                record,
                str(data["world"]),
                prompts.removeprefix(SHAPES_PROMPTS),
                int(evaluation["per_category"]),
                steps,
            )
        )
    return targets, skipped


def _questions(target: RunTarget) -> list[dict]:
    from t2iscale.data.shapes.prompts import eval_prompt_set

    return eval_prompt_set(target.world, version=target.version, per_category=target.per_category).questions()


def judge_study(
    targets: Sequence[RunTarget], judges: Judges, progress: bool = True
) -> dict[str, dict[int, list[JudgedImage]]]:
    """run id -> step -> its images judged by the judge and the run's world's oracle."""
    oracles: dict[str, object] = {}
    judged: dict[str, dict[int, list[JudgedImage]]] = {}
    for target in targets:
        oracle = oracles.setdefault(target.world, oracle_judge(target.world))
        questions = _questions(target)
        judged[target.record.run_id] = {
            step: audit_manifest(
                manifest,
                questions,
                judges,
                oracle,
                progress,
                desc=f"audit: {target.record.run_id} step {step}",
            )
            for step, manifest in target.steps
        }
    return judged


# -- across configurations ------------------------------------------------------------------------------------


def _interval_dict(groups: list[np.ndarray], n_samples: int, value_range) -> dict:
    try:
        return combine(groups, n_samples, DEFAULT_LEVEL, value_range).to_dict()
    except UserError as error:
        return {
            "value": float(sum(g.mean() for g in groups)),
            "lo": None,
            "hi": None,
            "n_prompts": groups[0].shape[1],
            "n_samples": n_samples,
            "why_no_interval": str(error),
        }


def _excludes_zero(entry: dict) -> bool | None:
    if entry.get("lo") is None:
        return None
    return entry["lo"] > 0 or entry["hi"] < 0


def _spearman(x: Sequence[float], y: Sequence[float]) -> dict:
    if len(x) < MIN_RUNS:
        return {"why": f"a correlation needs at least {MIN_RUNS} configurations, the audit has {len(x)}"}
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"why": "every configuration has the same value; the correlation is undefined"}
    coefficient, p, how = correlation_test(x, y, "spearman")
    return {"coefficient": coefficient, "p_value": p, "p_method": how, "n": len(x)}


def ranking(targets: Sequence[RunTarget], judged: dict[str, dict[int, list[JudgedImage]]]) -> dict:
    """Does the judge rank the configurations (at each run's last audited step) as the oracle does? Per judge
    score (`GAP_PAIRS`): configuration values, Spearman judge vs oracle and each vs parameters, pairwise flips."""
    records = [t.record for t in targets]
    varying = varying_axes(records)
    configurations: dict[tuple, list[RunTarget]] = {}
    for target in sorted(targets, key=lambda t: (t.record.params or 0, t.record.run_id)):
        key = tuple(getattr(target.record, axis) for axis in CONFIGURATION_AXES)
        configurations.setdefault(key, []).append(target)
    keys = list(configurations)
    finals = {t.record.run_id: judged[t.record.run_id][max(judged[t.record.run_id])] for t in targets}
    out = {}
    for name, (judge_kind, oracle_kind) in GAP_PAIRS.items():
        runs = [t.record.run_id for key in keys for t in configurations[key]]
        try:
            _, n_samples, judge_table = per_prompt_scores([samples_of(finals[r], judge_kind) for r in runs])
            _, _, oracle_table = per_prompt_scores([samples_of(finals[r], oracle_kind) for r in runs])
        except UserError as error:
            out[name] = {"why": f"the runs share no scored image: {error}"}
            continue
        rows = {run: i for i, run in enumerate(runs)}

        def table(table_, key, rows=rows):
            return table_[[rows[t.record.run_id] for t in configurations[key]]]  # (k, P)

        entries = []
        for key in keys:
            first = configurations[key][0].record
            entries.append(
                {
                    "label": configuration_label(first, varying),
                    "params": first.params,
                    "n_seeds": len(configurations[key]),
                    "steps": sorted({max(judged[t.record.run_id]) for t in configurations[key]}),
                    "judge": _interval_dict([table(judge_table, key)], n_samples, (0.0, 1.0)),
                    "oracle": _interval_dict([table(oracle_table, key)], n_samples, (0.0, 1.0)),
                    "gap": _interval_dict(
                        [table(judge_table, key) - table(oracle_table, key)], n_samples, DIFFERENCE
                    ),
                }
            )
        pairs = []
        for a, b in combinations(range(len(keys)), 2):
            oracle_diff = _interval_dict(
                [table(oracle_table, keys[a]), -table(oracle_table, keys[b])], n_samples, DIFFERENCE
            )
            judge_diff = _interval_dict(
                [table(judge_table, keys[a]), -table(judge_table, keys[b])], n_samples, DIFFERENCE
            )
            pairs.append(
                {
                    "a": entries[a]["label"],
                    "b": entries[b]["label"],
                    "oracle_difference": oracle_diff,
                    "judge_difference": judge_diff,
                    "flipped": bool(np.sign(oracle_diff["value"]) * np.sign(judge_diff["value"]) < 0),
                    "oracle_separates": _excludes_zero(oracle_diff),
                    "judge_separates": _excludes_zero(judge_diff),
                }
            )
        judge_values = [e["judge"]["value"] for e in entries]
        oracle_values = [e["oracle"]["value"] for e in entries]
        params = [float(e["params"] or 0) for e in entries]
        out[name] = {
            "configurations": entries,
            "spearman_judge_oracle": _spearman(judge_values, oracle_values),
            "spearman_with_params": {
                "judge": _spearman(params, judge_values),
                "oracle": _spearman(params, oracle_values),
            },
            "pairs": pairs,
            "n_flipped": sum(p["flipped"] for p in pairs),
            "n_flipped_separable": sum(p["flipped"] and bool(p["oracle_separates"]) for p in pairs),
        }
    return out


# -- the whole audit ------------------------------------------------------------------------------------------


def audit_judge(
    judges: Judges,
    study_dir: str | Path | None = None,
    world: str | None = None,
    per_category: int = 10,
    seeds: int = 2,
    resolution: int | None = None,
    progress: bool = True,
) -> dict:
    """The audit's result (see the module note): the judge on ground-truth renders and, with `study_dir`, on the
    study's generated images, with the ranking comparison. World and render resolution default to the study's
    (else `tiny`, 64 px)."""
    targets, skipped = study_targets(study_dir) if study_dir is not None else ([], [])
    if study_dir is not None and not targets:
        raise UserError(
            f"{str(study_dir)!r}: no run has evaluated images on a shapes prompt set: " + "; ".join(skipped)
        )
    if world is None:
        world = targets[0].world if targets else "tiny"
    if resolution is None:
        resolution = int(targets[0].record.config["data"]["resolution"]) if targets else 64
    renders = audit_renders(world, judges, per_category, seeds, resolution, progress)
    result = {
        "judge": judges.describe(),
        "level": DEFAULT_LEVEL,
        "world": str(world),
        "renders": {
            "per_category": per_category,
            "seeds": seeds,
            "resolution": resolution,
            "summary": summarize(renders),
        },
        "study": None,
    }
    if targets:
        judged = judge_study(targets, judges, progress)
        varying = varying_axes([t.record for t in targets])
        result["study"] = {
            "dir": str(study_dir),
            "summary": summarize([r for steps in judged.values() for rs in steps.values() for r in rs]),
            "runs": [
                {
                    "run_id": t.record.run_id,
                    "label": configuration_label(t.record, varying) + f" · seed {t.record.seed}",
                    "params": t.record.params,
                    "steps": [
                        {"step": step, "n_images": len(records), **gap_estimates(records)}
                        for step, records in sorted(judged[t.record.run_id].items())
                    ],
                }
                for t in targets
            ],
            "ranking": ranking(targets, judged),
            "skipped": skipped,
        }
    return result


def write_audit(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def read_audit(path: str | Path) -> dict:
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read the judge audit {str(path)!r}: {error}") from error
    if not isinstance(result, dict) or "renders" not in result or "judge" not in result:
        raise UserError(f"{str(path)!r} is not a judge audit (t2iscale eval audit-judge writes one)")
    return result


def format_audit(result: dict) -> str:
    """The audit in a few lines for the terminal (the report and the JSON hold everything)."""
    lines = [f"judge: {result['judge']['questions']}; VQAScore: {result['judge']['prompts']}"]
    parts = [("ground-truth renders", result["renders"]["summary"])]
    if result.get("study"):
        parts.append(("the study's generated images", result["study"]["summary"]))
    for where, summary in parts:
        yes_no, calibration = summary["yes_no"], summary["calibration"]
        lines.append(
            f"on {where} ({summary['n_images']} images, {summary['n_prompts']} prompts, "
            f"{summary['n_answers']} answers):"
        )
        lines.append(f"  accuracy vs oracle {interval_text(summary['accuracy'])}")
        lines.append(
            f"  yes-bias {interval_text(yes_no['yes_bias'])}; false-yes {interval_text(yes_no['false_yes_rate'])}"
        )
        ece = calibration["ece"]
        lines.append(f"  ECE {'n/a' if ece is None else f'{ece:.3f}'} over {calibration['n']} answers")
        for category, entry in summary["by_category"].items():
            lines.append(f"  {category}: {interval_text(entry['accuracy'])}")
    if result.get("study"):
        for name, entry in result["study"]["ranking"].items():
            if "why" in entry:
                lines.append(f"ranking by {name}: {entry['why']}")
                continue
            spearman = entry["spearman_judge_oracle"]
            rho = (
                spearman.get("why")
                or f"Spearman {spearman['coefficient']:+.3f} (p {spearman['p_value']:.3g})"
            )
            lines.append(
                f"ranking by {name}: {rho}; {entry['n_flipped']} of {len(entry['pairs'])} pairs flipped "
                f"({entry['n_flipped_separable']} of them separated by the oracle)"
            )
    return "\n".join(lines)

"""The report's TIFA-by-element-type section: how often each kind of question (object, color, counting, spatial,
...) is answered right in each configuration's final evaluation (TIFA, Hu et al., ICCV 2023, Sec. 3: accuracy per
element type). Read from the runs' `tifa.json`, each type's value pooled over the configuration's training seeds
with its interval over the prompts that ask that type (`t2iscale.eval.intervals.replicate_estimate`)."""

from __future__ import annotations

import json
from collections import defaultdict

from t2iscale.errors import UserError
from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.samples import SampleScores
from t2iscale.eval.score import result_path
from t2iscale.report import fmt, html
from t2iscale.report.analyses import LEVEL
from t2iscale.train.checkpoint import step_dir_name
from t2iscale.train.run_dir import RunDir


def _final_results(run_dir, step: int) -> dict | None:
    path = result_path(RunDir(run_dir).eval_dir / step_dir_name(step), "tifa")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # evaluated elsewhere, or the folder was moved: the type table leaves that run out


def element_type_section(analyses, options) -> html.Section | None:
    """None (left out) unless the report's metric is TIFA and some final evaluation has element types."""
    data = analyses.data
    if data.metric != "tifa":
        return None
    run_dirs = {run.run_id: run.run_dir for run in data.runs}
    table: list[tuple[str, dict[str, str]]] = []
    chance: dict[str, float] = {}
    kinds: set[str] = set()
    without_samples = 0
    for configuration in data.configurations:
        step = configuration.final_step
        samples: dict[str, list[SampleScores]] = defaultdict(list)
        accuracy: dict[str, list[float]] = defaultdict(list)
        for run in configuration.runs:
            result = _final_results(run_dirs[run.run_id], step) if run.run_id in run_dirs else None
            for kind, entry in (result or {}).get("by_element_type", {}).items():
                kinds.add(kind)
                accuracy[kind].append(entry["accuracy"])
                if entry.get("chance_level") is not None:
                    chance[kind] = entry["chance_level"]
                if "samples" in entry:
                    samples[kind].append(SampleScores.from_dict(entry["samples"]))
        cells = {}
        for kind, values in accuracy.items():
            if len(samples[kind]) == len(values):
                try:
                    cells[kind] = fmt.estimate(replicate_estimate(samples[kind], LEVEL, (0.0, 1.0)))
                    continue
                except UserError:  # one prompt asks this type: no interval over prompts
                    pass
            else:
                without_samples += 1
            cells[kind] = fmt.metric_value(sum(values) / len(values))
        table.append((configuration.label, cells))
    if not kinds:
        return None
    kinds_sorted = sorted(kinds)
    rows = [[label, *(cells.get(kind, fmt.MISSING) for kind in kinds_sorted)] for label, cells in table]
    if chance:
        rows.append(["chance", *(fmt.metric_value(chance.get(kind)) for kind in kinds_sorted)])
    body = html.paragraph(
        "TIFA's accuracy per element type of its questions (TIFA, Hu et al., ICCV 2023): each configuration's "
        f"final evaluation, the mean over its training seeds with its {LEVEL:.0%} interval over the prompts that ask "
        "that type (and over training seeds where there are several). The chance row is a uniform guesser's "
        "accuracy on the same questions."
    )
    body += html.table(["configuration", *kinds_sorted], rows, [False] + [True] * len(kinds_sorted))
    if without_samples:
        body += html.note(
            f"{without_samples} value(s) without an interval: evaluated before per-image element-type scores were kept."
        )
    return html.Section("element-types", "TIFA by element type", body)

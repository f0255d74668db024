"""Auditing a judge against the shapes world's exact oracle: how wrong is a VQA judge, and where.

Every VQA judge errs in ways no benchmark measures exactly: a yes-bias, weak counting, weak spatial relations.
The shapes world has what real data lacks, an oracle that reads each image exactly (`t2iscale.eval.oracle`,
>= 99% right on ground-truth renders: `t2iscale eval oracle-check`). So a judge's answer can be checked against
the truth about the image it looked at, not against the prompt's answer key (a generated image may not show what
its prompt asked for; then the right answer about the image is not the key's).

Per image (`audit_image`): the judge and the oracle answer the prompt's TIFA questions, and the VQAScore question
"Does this figure show '{prompt}'?" is asked about the image's own prompt and, on ground-truth renders, about a
*foil*, another prompt of the same category (the oracle's truth for a whole prompt: it answers every question of
that prompt as its key says). `summarize` turns many images into:

- **accuracy** (judge answer = oracle answer), overall, per GenEval category and per TIFA element type;
- **yes-bias** on yes/no questions: the judge's rate of "yes" minus the oracle's, and its false-yes rate (yes where
  the oracle says no) and false-no rate;
- **soft accuracy**: the mean probability the judge gives the oracle's answer (Soft-TIFA's quantity, scored
  against the truth);
- **calibration** (`reliability`): the judge's confidence (probability of its own answer) in 10 equal-width bins,
  each bin's count, mean confidence and accuracy, and the expected calibration error
  ECE = sum_b (n_b / n) |accuracy_b - confidence_b| (Guo et al., ICML 2017); for VQAScore, P("yes") against the
  oracle's truth about the whole prompt.

Intervals (DESIGN.md, "Findings and statistics"): a rate is a mean of per-image values (an image's share of its
questions of that kind), and its 95% interval is the project's t interval over prompts
(`t2iscale.eval.intervals.combine`; a prompt's images, across seeds, runs and steps, are averaged first, since
they share its difficulty); with fewer than 2 prompts there is none, and the reason is kept. A rate whose every
prompt scores alike has an interval of zero width (docs/statistics.md says so too). The ECE has no interval: its
answers are not independent (several per image, several images per prompt) and its bins are coarse, so it is given
with its n (answers, images, prompts) and the reliability bins with their counts, for the reader to judge.

`gap_estimates` compares the judge's scores of one evaluation with the oracle's, image by image (a paired
difference over the same images): hard TIFA and Soft-TIFA against the oracle's TIFA, VQAScore against the oracle's
strict per-image accuracy (every question right). Torch-free; the judges bring their own models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.intervals import DEFAULT_LEVEL, combine, replicate_estimate
from t2iscale.eval.judges import Judges, is_yes_no, prompt_question
from t2iscale.eval.samples import SampleScores
from t2iscale.eval.tifa import soft_image_score

RELIABILITY_BINS = 10
PROPORTION = (0.0, 1.0)
DIFFERENCE = (-1.0, 1.0)
# A judge's score -> the oracle's score it estimates (the per-image values of `image_values`).
GAP_PAIRS = {
    "tifa": ("judge_tifa", "oracle_tifa"),
    "soft_tifa": ("judge_soft_tifa", "oracle_tifa"),
    "vqascore": ("judge_vqascore", "oracle_strict"),
}


@dataclass
class JudgedImage:
    """One image, judged by the judge and by the oracle.

    `answers`: per TIFA question, {element_type, yes_no, key, oracle, judge, confidence, p_oracle, p_key}, where
    confidence is the judge's probability of its own answer, p_oracle of the oracle's, p_key of the key's.
    `prompts`: per whole-prompt (VQAScore) question, {foil, truth ("yes"/"no", the oracle's), p_yes (the judge's)}.
    """

    prompt_id: str
    seed: int
    category: str | None
    answers: list[dict] = field(default_factory=list)
    prompts: list[dict] = field(default_factory=list)


def audit_image(
    image: np.ndarray,
    questions: Sequence[dict],
    judges: Judges,
    oracle,
    prompt_id: str,
    seed: int,
    foil: Sequence[dict] | None = None,
) -> JudgedImage:
    """Judge one image (np.uint8 (H, W, 3)) with `judges` and `oracle` (an oracle `Judge`): its prompt's TIFA
    `questions`, VQAScore's question about its own prompt and, when given, about the `foil` prompt's questions."""
    questions = list(questions)
    whole = [prompt_question(prompt_id, questions[0]["caption"], questions)]
    if foil:
        whole.append(prompt_question(foil[0]["id"], foil[0]["caption"], foil))
    truth = oracle.judge_all(image, questions + whole)  # one parse of the image
    judged = judges.questions.judge_all(image, questions)
    prompt_judged = judges.prompts.judge_all(image, whole)
    record = JudgedImage(prompt_id, seed, questions[0].get("category"))
    for question, by_oracle, by_judge in zip(questions, truth, judged):
        record.answers.append(
            {
                "element_type": question["element_type"],
                "yes_no": is_yes_no(question),
                "key": question["answer"],
                "oracle": by_oracle.answer,
                "judge": by_judge.answer,
                "confidence": by_judge.confidence,
                "p_oracle": by_judge.probability(question, by_oracle.answer),
                "p_key": by_judge.probability(question, question["answer"]),
            }
        )
    for index, (question, by_oracle, by_judge) in enumerate(
        zip(whole, truth[len(questions) :], prompt_judged)
    ):
        record.prompts.append(
            {"foil": index > 0, "truth": by_oracle.answer, "p_yes": by_judge.probability(question, "yes")}
        )
    return record


def image_values(record: JudgedImage) -> dict[str, float]:
    """One image's scores: the judge's agreement with the oracle, each one's TIFA (against the key), the judge's
    Soft-TIFA and VQAScore, and the oracle's strict accuracy (1 when it finds every question answered as keyed)."""
    answers = record.answers
    own = next(p for p in record.prompts if not p["foil"])
    return {
        "agreement": float(np.mean([a["judge"] == a["oracle"] for a in answers])),
        "oracle_tifa": float(np.mean([a["oracle"] == a["key"] for a in answers])),
        "judge_tifa": float(np.mean([a["judge"] == a["key"] for a in answers])),
        "judge_soft_tifa": soft_image_score([a["p_key"] for a in answers], "arithmetic"),
        "oracle_strict": float(own["truth"] == "yes"),
        "judge_vqascore": float(own["p_yes"]),
    }


# -- statistics -----------------------------------------------------------------------------------------------


def over_prompts(
    values: Iterable[tuple[str, float]], value_range=PROPORTION, level: float = DEFAULT_LEVEL
) -> dict | None:
    """The mean of per-image values, (prompt id, value) pairs, with its t interval over prompts (a prompt's
    values averaged first); None when there are no values. Without an interval (one prompt) the reason is kept."""
    by_prompt: dict[str, list[float]] = defaultdict(list)
    n_values = 0
    for prompt_id, value in values:
        by_prompt[prompt_id].append(float(value))
        n_values += 1
    if not by_prompt:
        return None
    table = np.array([[np.mean(v) for v in by_prompt.values()]])  # (1, P)
    try:
        estimate = combine([table], n_values, level, value_range).to_dict()
    except UserError as error:
        return {
            "value": float(table.mean()),
            "lo": None,
            "hi": None,
            "n_prompts": len(by_prompt),
            "n_samples": n_values,
            "why_no_interval": str(error),
        }
    return estimate


def reliability(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = RELIABILITY_BINS
) -> dict:
    """A reliability curve and the expected calibration error of probabilities (n,) for binary outcomes (n,).

    Bins are equal-width on [0, 1] (the last one closed); each reports its count, mean probability and observed
    frequency (null when empty). ECE = sum_b (n_b / n) |frequency_b - mean probability_b|; max_gap is the largest
    |frequency - probability| of a non-empty bin. No interval: see the module note.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} probabilities for {y.size} outcomes")
    if p.size == 0:
        return {"n": 0, "ece": None, "max_gap": None, "bins": []}
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows, ece, max_gap = [], 0.0, 0.0
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        row = {"lo": b / bins, "hi": (b + 1) / bins, "n": n, "mean_probability": None, "frequency": None}
        if n:
            row["mean_probability"] = float(p[inside].mean())
            row["frequency"] = float(y[inside].mean())
            gap = abs(row["frequency"] - row["mean_probability"])
            ece += n / p.size * gap
            max_gap = max(max_gap, gap)
        rows.append(row)
    return {"n": int(p.size), "ece": float(ece), "max_gap": float(max_gap), "bins": rows}


def _share(records: Sequence[JudgedImage], keep, hit, value_range=PROPORTION) -> dict | None:
    """Per image, the share of its answers passing `keep` that pass `hit`; their mean over prompts."""
    values = []
    for record in records:
        kept = [a for a in record.answers if keep(a)]
        if kept:
            values.append((record.prompt_id, float(np.mean([hit(a) for a in kept]))))
    return over_prompts(values, value_range)


def summarize(records: Sequence[JudgedImage]) -> dict:
    """Accuracy (overall, per category, per element type), yes-bias, soft accuracy and calibration of a judge
    against the oracle on `records` (see the module note); n of answers, images and prompts."""
    if not records:
        raise UserError("no images to audit")
    answers = [a for r in records for a in r.answers]
    categories = sorted({r.category for r in records if r.category is not None})
    element_types = sorted({a["element_type"] for a in answers})
    agree = lambda a: a["judge"] == a["oracle"]  # noqa: E731
    everything = lambda a: True  # noqa: E731
    yes_no = [a for a in answers if a["yes_no"]]
    summary = {
        "n_images": len(records),
        "n_prompts": len({r.prompt_id for r in records}),
        "n_answers": len(answers),
        "accuracy": _share(records, everything, agree),
        "soft_accuracy": over_prompts(
            (r.prompt_id, float(np.mean([a["p_oracle"] for a in r.answers]))) for r in records
        ),
        "by_category": {
            category: {
                "accuracy": _share([r for r in records if r.category == category], everything, agree),
                "n_answers": sum(len(r.answers) for r in records if r.category == category),
            }
            for category in categories
        },
        "by_element_type": {
            kind: {
                "accuracy": _share(records, lambda a, kind=kind: a["element_type"] == kind, agree),
                "n_answers": sum(a["element_type"] == kind for a in answers),
            }
            for kind in element_types
        },
        "yes_no": {
            "n_answers": len(yes_no),
            "judge_yes_rate": _share(records, lambda a: a["yes_no"], lambda a: a["judge"] == "yes"),
            "oracle_yes_rate": _share(records, lambda a: a["yes_no"], lambda a: a["oracle"] == "yes"),
            "yes_bias": _share(
                records,
                lambda a: a["yes_no"],
                lambda a: (a["judge"] == "yes") - (a["oracle"] == "yes"),
                DIFFERENCE,
            ),
            "false_yes_rate": _share(
                records, lambda a: a["yes_no"] and a["oracle"] == "no", lambda a: a["judge"] == "yes"
            ),
            "false_no_rate": _share(
                records, lambda a: a["yes_no"] and a["oracle"] == "yes", lambda a: a["judge"] == "no"
            ),
        },
        "calibration": reliability([a["confidence"] for a in answers], [agree(a) for a in answers]),
    }
    whole = [(r.prompt_id, p) for r in records for p in r.prompts]
    if whole:
        summary["vqascore"] = {
            "n_questions": len(whole),
            "n_foils": sum(p["foil"] for _, p in whole),
            "oracle_yes_share": float(np.mean([p["truth"] == "yes" for _, p in whole])),
            "accuracy": over_prompts(
                (pid, float((p["p_yes"] >= 0.5) == (p["truth"] == "yes"))) for pid, p in whole
            ),
            "mean_p_yes_when_shown": over_prompts(
                (pid, p["p_yes"]) for pid, p in whole if p["truth"] == "yes"
            ),
            "mean_p_yes_when_not_shown": over_prompts(
                (pid, p["p_yes"]) for pid, p in whole if p["truth"] == "no"
            ),
            "calibration": reliability(
                [p["p_yes"] for _, p in whole], [p["truth"] == "yes" for _, p in whole]
            ),
        }
    return summary


def samples_of(records: Sequence[JudgedImage], kind: str) -> SampleScores:
    """One evaluation's per-image values of `kind` (a key of `image_values`) as `SampleScores`."""
    values = [image_values(r)[kind] for r in records]
    categories = [r.category for r in records]
    return SampleScores(
        tuple(r.prompt_id for r in records),
        tuple(r.seed for r in records),
        values,
        categories if any(c is not None for c in categories) else None,
    )


def estimate_dict(samples: SampleScores, value_range=PROPORTION, level: float = DEFAULT_LEVEL) -> dict:
    """`replicate_estimate` of one evaluation as a dict, or its value and why it has no interval."""
    try:
        return replicate_estimate([samples], level, value_range).to_dict()
    except UserError as error:
        return {
            "value": samples.mean,
            "lo": None,
            "hi": None,
            "n_prompts": len(set(samples.prompt_ids)),
            "n_samples": len(samples),
            "why_no_interval": str(error),
        }


def gap_estimates(records: Sequence[JudgedImage]) -> dict[str, dict]:
    """For one evaluation (images of one run at one step): each judge score, the oracle score it estimates, and
    the paired difference judge - oracle, image by image, each with its interval over prompts."""
    out = {}
    for name, (judge_kind, oracle_kind) in GAP_PAIRS.items():
        judge, oracle = samples_of(records, judge_kind), samples_of(records, oracle_kind)
        gap = SampleScores(judge.prompt_ids, judge.seeds, judge.values - oracle.values, judge.categories)
        out[name] = {
            "judge": estimate_dict(judge),
            "oracle": estimate_dict(oracle),
            "gap": estimate_dict(gap, DIFFERENCE),
        }
    return out


def interval_text(entry: dict | None, digits: int = 3) -> str:
    """'0.812 [0.770, 0.854] (n = 60 prompts)' or '0.812 (no interval: ...)' or 'n/a'."""
    if entry is None:
        return "n/a"
    value = f"{entry['value']:.{digits}f}"
    if entry.get("lo") is None:
        return f"{value} (no interval: {entry.get('why_no_interval', 'none')})"
    return f"{value} [{entry['lo']:.{digits}f}, {entry['hi']:.{digits}f}] (n = {entry['n_prompts']} prompts)"


# -- what is judged -------------------------------------------------------------------------------------------


def _foils(prompts) -> dict[str, object]:
    """Each prompt's foil: the next prompt of its category (cyclic), or the next prompt of the set when its
    category has one prompt only."""
    by_category: dict[str, list] = defaultdict(list)
    for prompt in prompts:
        by_category[prompt.category].append(prompt)
    foils = {}
    for index, prompt in enumerate(prompts):
        same = by_category[prompt.category]
        if len(same) > 1:
            foils[prompt.id] = same[(same.index(prompt) + 1) % len(same)]
        elif len(prompts) > 1:
            foils[prompt.id] = prompts[(index + 1) % len(prompts)]
    return foils


def audit_renders(
    world, judges: Judges, per_category: int = 10, seeds: int = 2, resolution: int = 64, progress: bool = True
) -> list[JudgedImage]:
    """The judge on ground-truth renders of the shapes world's evaluation prompts (`per_category` prompts per
    GenEval category, `seeds` layouts each, `resolution` px), each also asked about its foil prompt."""
    from t2iscale.data.shapes.prompts import eval_prompt_set, ground_truth_scene
    from t2iscale.data.shapes.render import check_resolution, render_scene
    from t2iscale.data.shapes.world import resolve_world
    from t2iscale.eval.judges import oracle_judge
    from t2iscale.progress import progress_bar

    if per_category < 1:
        raise UserError(f"--per-category must be at least 1, got {per_category}")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    world = resolve_world(world)
    resolution = check_resolution(resolution)
    prompts = eval_prompt_set(world, per_category=per_category).prompts
    foils = _foils(prompts)
    oracle = oracle_judge(world)
    jobs = [(prompt, seed) for prompt in prompts for seed in range(seeds)]
    records = []
    for prompt, seed in progress_bar(jobs, enabled=progress, desc="audit: renders", unit="img"):
        image = render_scene(ground_truth_scene(prompt, seed), world, resolution)
        foil = foils.get(prompt.id)
        records.append(
            audit_image(
                image,
                prompt.questions,
                judges,
                oracle,
                prompt.id,
                seed,
                foil=None if foil is None else foil.questions,
            )
        )
    return records


def audit_manifest(
    manifest, questions: list[dict], judges: Judges, oracle, progress: bool = True, desc: str = "audit"
) -> list[JudgedImage]:
    """The judge on a manifest's images (generated ones), each asked its prompt's `questions` (TIFA format with
    the shapes world's `query`, which the oracle answers)."""
    from t2iscale.eval.manifest import load_image, read_manifest
    from t2iscale.eval.tifa import check_prompts_have_questions, questions_by_prompt
    from t2iscale.progress import progress_bar

    manifest = Path(manifest)
    entries = read_manifest(manifest)
    groups = questions_by_prompt(questions)
    check_prompts_have_questions((e.prompt_id for e in entries), questions, str(manifest))
    folder = manifest.parent
    return [
        audit_image(
            load_image(folder / entry.path),
            groups[entry.prompt_id],
            judges,
            oracle,
            entry.prompt_id,
            entry.seed,
        )
        for entry in progress_bar(entries, enabled=progress, desc=desc, unit="img")
    ]

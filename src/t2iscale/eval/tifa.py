"""TIFA: text-to-image faithfulness by visual question answering (paper Sec. 3, "evaluation"; Hu et al. 2023).

The paper measures text-image alignment mainly with TIFA. For each prompt a set of multiple-choice questions
(with the answer the prompt implies) is asked about the generated image; a prompt's score is the fraction of
its questions answered correctly, and the TIFA score is the mean over prompts. Here:

- the question format is TIFA v1.0's: a JSON list of `{"id", "caption", "question", "choices", "answer",
  "element_type", "element", "coco_val_id"?}` where `id` is the prompt id (extra keys such as the shapes
  world's `category` and `query` are kept);
- the answerer is any `t2iscale.eval.vqa.VQABackend` (the shapes world's oracle, or a local BLIP model);
- with several images per prompt (several seeds), a prompt's score is the mean over its images; each image's own
  score is kept too (`image_scores`), the per-sample scores that intervals and paired comparisons need;
- breakdowns: accuracy per `element_type` (over all answers of that type), and the mean prompt score per
  `category` when the questions carry one (GenEval's categories in the shapes world);
- the chance level of a question set: mean over prompts of the mean over its questions of 1/len(choices), i.e.
  the expected score of an answerer that picks uniformly at random.

Soft-TIFA (GenEval 2; `judge_images`, then `score_judgements`): the same questions, answered by a judge that also
gives probabilities (`t2iscale.eval.judges`). An image's score is the mean over its questions of the probability
the judge gives the right answer, arithmetic or geometric; prompts, categories and chance are handled as for TIFA
(the chance level is that of a judge uniform over each question's choices).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.vqa import VQABackend
from t2iscale.progress import progress_bar

# TIFA v1.0 keys and their types; `coco_val_id` is optional, other extra keys pass through.
REQUIRED_KEYS: dict[str, type] = {
    "id": str,
    "caption": str,
    "question": str,
    "choices": list,
    "answer": str,
    "element_type": str,
    "element": str,
}
OPTIONAL_KEYS: dict[str, tuple[type, ...]] = {
    "coco_val_id": (str, int, type(None)),
    "category": (str,),
}


def load_questions(path: str | Path) -> list[dict]:
    """Read and validate a TIFA question-answer file (a JSON list of question dicts)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"TIFA question file {str(path)!r} does not exist")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"TIFA question file {str(path)!r} is not valid JSON: {error}") from error
    return validate_questions(entries, source=str(path))


def validate_questions(entries, source: str = "<questions>") -> list[dict]:
    """Check TIFA-format entries; the first problem raises a UserError naming source, index, id and what is wrong."""
    if not isinstance(entries, list):
        raise UserError(f"{source}: expected a JSON list of question objects, got {type(entries).__name__}")
    if not entries:
        raise UserError(f"{source}: the question list is empty")
    prompt_caption: dict[str, str] = {}
    prompt_category: dict[str, str | None] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: entry {index}"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected an object, got {type(entry).__name__}")
        if isinstance(entry.get("id"), str):
            where += f" (id {entry['id']!r})"
        for key, expected in REQUIRED_KEYS.items():
            if key not in entry:
                raise UserError(f"{where}: missing key {key!r}")
            if not isinstance(entry[key], expected):
                raise UserError(
                    f"{where}: {key!r} must be a {expected.__name__}, got {type(entry[key]).__name__}"
                )
        for key, expected in OPTIONAL_KEYS.items():
            if key in entry and not isinstance(entry[key], expected):
                raise UserError(f"{where}: {key!r} has the wrong type {type(entry[key]).__name__}")
        if not entry["id"]:
            raise UserError(f"{where}: 'id' is empty")
        choices = entry["choices"]
        if not choices:
            raise UserError(f"{where}: 'choices' is empty")
        if not all(isinstance(choice, str) for choice in choices):
            raise UserError(f"{where}: every choice must be a string, got {choices!r}")
        if entry["answer"] not in choices:
            raise UserError(f"{where}: answer {entry['answer']!r} is not one of the choices {choices!r}")
        prompt_id = entry["id"]
        if prompt_caption.setdefault(prompt_id, entry["caption"]) != entry["caption"]:
            raise UserError(
                f"{where}: caption {entry['caption']!r} differs from the caption of earlier questions of "
                f"the same prompt ({prompt_caption[prompt_id]!r})"
            )
        if prompt_category.setdefault(prompt_id, entry.get("category")) != entry.get("category"):
            raise UserError(
                f"{where}: category {entry.get('category')!r} differs from earlier questions of the same "
                f"prompt ({prompt_category[prompt_id]!r})"
            )
    return [dict(entry) for entry in entries]


def questions_by_prompt(questions: list[dict]) -> dict[str, list[dict]]:
    """Group questions by prompt id, keeping the file's order of prompts and of questions."""
    groups: dict[str, list[dict]] = {}
    for question in questions:
        groups.setdefault(question["id"], []).append(question)
    return groups


def chance_level(questions: list[dict]) -> float:
    """Expected TIFA score of a uniformly random answerer: mean over prompts of mean over questions of 1/|choices|."""
    groups = questions_by_prompt(questions)
    if not groups:
        raise UserError("cannot compute a chance level: no questions")
    return float(np.mean([np.mean([1.0 / len(q["choices"]) for q in group]) for group in groups.values()]))


def check_prompts_have_questions(prompt_ids: Iterable[str], questions: list[dict], source: str) -> None:
    """A prompt to be scored without any question is a user error (wrong question file or prompt set)."""
    known = set(questions_by_prompt(questions))
    missing = sorted({prompt_id for prompt_id in prompt_ids if prompt_id not in known})
    if missing:
        shown = ", ".join(repr(prompt_id) for prompt_id in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UserError(f"prompt {shown}{more} has no questions in {source}")


def score_answers(questions: list[dict], answered: Iterable[tuple[str, list[str]]]) -> dict:
    """TIFA from answers already given: `answered` holds one (prompt_id, answers) per image.

    `answers[i]` answers the prompt's i-th question (order of `questions_by_prompt`). Only prompts that have at
    least one image are scored; the chance level is computed over those same prompts. `image_scores` holds each
    image's score (the fraction of its prompt's questions answered right), in the order of `answered`;
    `element_image_scores[type]` the same restricted to questions of one element type (None for an image whose
    prompt asks none of that type), so each type's accuracy gets an interval over prompts too.
    """
    groups = questions_by_prompt(questions)
    image_scores: dict[str, list[float]] = defaultdict(list)
    in_order: list[float] = []
    # per element type, each image's fraction right of its questions of that type (None: it has none), in order
    element_in_order: list[dict[str, float]] = []
    element_correct: dict[str, list[bool]] = defaultdict(list)
    element_chance: dict[str, list[float]] = defaultdict(list)
    for prompt_id, answers in answered:
        if prompt_id not in groups:
            raise UserError(f"prompt {prompt_id!r} has no questions")
        group = groups[prompt_id]
        if len(answers) != len(group):
            raise ValueError(f"prompt {prompt_id!r}: got {len(answers)} answers for {len(group)} questions")
        correct = []
        for question, answer in zip(group, answers):
            if answer not in question["choices"]:
                raise ValueError(
                    f"prompt {prompt_id!r}: the VQA backend answered {answer!r}, which is not one of the "
                    f"choices {question['choices']!r} of {question['question']!r}"
                )
            is_correct = answer == question["answer"]
            correct.append(is_correct)
            element_correct[question["element_type"]].append(is_correct)
            element_chance[question["element_type"]].append(1.0 / len(question["choices"]))
        image_scores[prompt_id].append(float(np.mean(correct)))
        in_order.append(image_scores[prompt_id][-1])
        by_type: dict[str, list[bool]] = defaultdict(list)
        for question, is_correct in zip(group, correct):
            by_type[question["element_type"]].append(is_correct)
        element_in_order.append({kind: float(np.mean(values)) for kind, values in by_type.items()})
    if not image_scores:
        raise UserError("no images to score")

    scored = [prompt_id for prompt_id in groups if prompt_id in image_scores]
    per_prompt = {}
    for prompt_id in scored:
        group = groups[prompt_id]
        per_prompt[prompt_id] = {
            "score": float(np.mean(image_scores[prompt_id])),
            "n_images": len(image_scores[prompt_id]),
            "n_questions": len(group),
            "caption": group[0]["caption"],
            **({"category": group[0]["category"]} if "category" in group[0] else {}),
        }
    scored_questions = [q for prompt_id in scored for q in groups[prompt_id]]
    result = {
        "score": float(np.mean([p["score"] for p in per_prompt.values()])),
        "chance_level": chance_level(scored_questions),
        "n_prompts": len(scored),
        "n_images": sum(len(s) for s in image_scores.values()),
        "n_answers": sum(len(c) for c in element_correct.values()),
        "by_element_type": {
            element_type: {
                "accuracy": float(np.mean(element_correct[element_type])),
                "chance_level": float(np.mean(element_chance[element_type])),
                "n_answers": len(element_correct[element_type]),
            }
            for element_type in sorted(element_correct)
        },
    }
    categories = sorted({p["category"] for p in per_prompt.values() if "category" in p})
    if categories:
        by_category = {}
        for category in categories:
            ids = [prompt_id for prompt_id, p in per_prompt.items() if p.get("category") == category]
            by_category[category] = {
                "score": float(np.mean([per_prompt[prompt_id]["score"] for prompt_id in ids])),
                "chance_level": chance_level([q for prompt_id in ids for q in groups[prompt_id]]),
                "n_prompts": len(ids),
            }
        result["by_category"] = by_category
    result["per_prompt"] = per_prompt
    result["image_scores"] = in_order
    result["element_image_scores"] = {
        kind: [scores.get(kind) for scores in element_in_order] for kind in result["by_element_type"]
    }
    return result


def run_tifa(
    images: Iterable[tuple[str, np.ndarray]],
    questions: list[dict],
    backend: VQABackend,
    total: int | None = None,
    progress: bool = True,
) -> dict:
    """Ask `backend` every question of each image's prompt and score the answers (see `score_answers`).

    `images` yields (prompt_id, np.uint8 (H, W, 3)) pairs; a prompt id without questions is a UserError.
    """
    groups = questions_by_prompt(questions)

    def answered():
        for prompt_id, image in progress_bar(images, enabled=progress, total=total, desc="TIFA", unit="img"):
            if prompt_id not in groups:
                raise UserError(f"prompt {prompt_id!r} has no questions")
            yield prompt_id, list(backend.answer_all(image, groups[prompt_id]))

    return score_answers(questions, answered())


# -- Soft-TIFA ------------------------------------------------------------------------------------------------

SOFT_MEANS = ("arithmetic", "geometric")


def soft_image_score(right_probabilities, mean: str = "arithmetic") -> float:
    """One image's Soft-TIFA from the probabilities (Q,) its judge gave its questions' right answers.

    arithmetic: the mean; geometric: (prod p)^(1/Q), 0 as soon as one question gets probability 0.
    """
    p = np.asarray(right_probabilities, dtype=np.float64)
    if p.size == 0:
        raise ValueError("an image with no questions has no Soft-TIFA")
    if mean == "arithmetic":
        return float(p.mean())
    if mean == "geometric":
        return 0.0 if np.any(p <= 0) else float(np.exp(np.log(p).mean()))
    raise UserError(f"unknown Soft-TIFA mean {mean!r}; valid: {', '.join(SOFT_MEANS)}")


def soft_chance_level(questions: list[dict], mean: str = "arithmetic") -> float:
    """Soft-TIFA of a judge uniform over each question's choices: mean over prompts of its image score."""
    groups = questions_by_prompt(questions)
    return float(
        np.mean([soft_image_score([1.0 / len(q["choices"]) for q in g], mean) for g in groups.values()])
    )


def score_judgements(
    questions: list[dict], judged: Iterable[tuple[str, list]], mean: str = "arithmetic"
) -> dict:
    """Soft-TIFA from judgements already made: `judged` holds one (prompt_id, [Judgement]) per image.

    Laid out like `score_answers`' result: `score` (mean over prompts of the mean over a prompt's images),
    `chance_level`, `n_prompts`, `n_images`, `n_answers`, `by_element_type` (mean probability of the right answer
    per element type), `by_category`, `per_prompt`, `image_scores` (judged order); plus `mean` and `hard_tifa`,
    the same judge's hard TIFA (its most probable answer scored right or wrong).
    """
    if mean not in SOFT_MEANS:
        raise UserError(f"unknown Soft-TIFA mean {mean!r}; valid: {', '.join(SOFT_MEANS)}")
    judged = list(judged)
    hard = score_answers(questions, ((pid, [j.answer for j in js]) for pid, js in judged))
    groups = questions_by_prompt(questions)
    image_scores: dict[str, list[float]] = defaultdict(list)
    in_order: list[float] = []
    element_probability: dict[str, list[float]] = defaultdict(list)
    for prompt_id, judgements in judged:
        right = [j.probability(q, q["answer"]) for q, j in zip(groups[prompt_id], judgements)]
        for question, p in zip(groups[prompt_id], right):
            element_probability[question["element_type"]].append(p)
        image_scores[prompt_id].append(soft_image_score(right, mean))
        in_order.append(image_scores[prompt_id][-1])
    per_prompt = {
        prompt_id: {**entry, "score": float(np.mean(image_scores[prompt_id]))}
        for prompt_id, entry in hard["per_prompt"].items()
    }
    scored_questions = [q for prompt_id in per_prompt for q in groups[prompt_id]]
    result = {
        "score": float(np.mean([p["score"] for p in per_prompt.values()])),
        "mean": mean,
        "hard_tifa": hard["score"],
        "chance_level": soft_chance_level(scored_questions, mean),
        "n_prompts": hard["n_prompts"],
        "n_images": hard["n_images"],
        "n_answers": hard["n_answers"],
        "by_element_type": {
            element_type: {
                "mean_probability": float(np.mean(values)),
                "accuracy": hard["by_element_type"][element_type]["accuracy"],
                "n_answers": len(values),
            }
            for element_type, values in sorted(element_probability.items())
        },
    }
    if "by_category" in hard:
        by_category = {}
        for category in hard["by_category"]:
            ids = [pid for pid, p in per_prompt.items() if p.get("category") == category]
            by_category[category] = {
                "score": float(np.mean([per_prompt[pid]["score"] for pid in ids])),
                "chance_level": soft_chance_level([q for pid in ids for q in groups[pid]], mean),
                "n_prompts": len(ids),
            }
        result["by_category"] = by_category
    result["per_prompt"] = per_prompt
    result["image_scores"] = in_order
    return result


def judge_images(
    images: Iterable[tuple[str, np.ndarray]],
    questions: list[dict],
    judge,
    total: int | None = None,
    progress: bool = True,
) -> list[tuple[str, list]]:
    """Ask `judge` (`t2iscale.eval.judges.Judge`) every question of each image's prompt: [(prompt_id, [Judgement])]."""
    groups = questions_by_prompt(questions)
    judged = []
    for prompt_id, image in progress_bar(images, enabled=progress, total=total, desc="judge", unit="img"):
        if prompt_id not in groups:
            raise UserError(f"prompt {prompt_id!r} has no questions")
        judged.append((prompt_id, list(judge.judge_all(image, groups[prompt_id]))))
    return judged

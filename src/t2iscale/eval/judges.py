"""Judges: answerers that give each question an answer *and* a probability (Soft-TIFA, VQAScore, the audit).

A TIFA answerer (`t2iscale.eval.vqa.VQABackend`) gives one answer per question; hard TIFA counts the right ones
(Hu et al. 2023, the paper's Sec. 3 metric and still the default). Later alignment scores use the answerer's
probabilities instead, which track human judgement more closely:

- **Soft-TIFA** (GenEval 2): per image, the mean over its questions of the probability the judge gives the right
  answer; arithmetic (`soft_tifa`) or geometric (`soft_tifa_gm`, which is low as soon as one question is);
- **VQAScore** (Lin et al., "Evaluating Text-to-Visual Generation with Image-to-Text Generation", ECCV 2024): per
  image, the probability of "yes" to "Does this figure show '{prompt}'? Please answer yes or no.".

A judge answers questions in TIFA's format with `Judgement`s: the answer (one of the choices) and a probability
for every choice (summing to 1). The backends:

- `AnswerJudge(backend)`: any `VQABackend`, probability 1 on its answer. `oracle_judge(world)` wraps the shapes
  world's exact oracle, so the oracle's Soft-TIFA equals its TIFA;
- `BlipJudge(blip)`: a local BLIP VQA model (`BlipVQA`); each choice's probability is its teacher-forced answer
  likelihood normalized over the choices (`BlipVQA.choice_probabilities`);
- `VQAScoreJudge(blip)`: yes/no questions only; P("yes") is the probability that the model's answer decoder
  generates exactly "yes" (`BlipVQA.answer_probabilities`), unnormalized as in Lin et al. 2024; "no" carries the
  rest (every answer other than "yes"). BLIP VQA is the local image-to-text model (Lin et al. use CLIP-FlanT5).

The whole-prompt question of VQAScore (`prompt_question`) carries the prompt's own TIFA questions as `atoms`: a
model judge reads its text, the oracle answers "yes" exactly when it answers every atom as its key says (the image
shows everything the prompt asks for), which makes the oracle's VQAScore GenEval's strict per-image accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.vqa import BlipVQA, VQABackend, backend_name

VQASCORE_TEMPLATE = "Does this figure show '{prompt}'? Please answer yes or no."
WHOLE_PROMPT = "whole prompt"  # element type of the VQAScore question
YES_NO = ("yes", "no")


@dataclass(frozen=True)
class Judgement:
    """A judge's answer to one question: `answer` (one of its choices) and `probabilities` (len(choices),),
    the judge's probability of each choice, in the question's order, summing to 1."""

    answer: str
    probabilities: tuple[float, ...]

    def probability(self, question: dict, choice: str) -> float:
        """The judge's probability of `choice` (0 for a string that is not one of the question's choices)."""
        choices = list(question["choices"])
        return self.probabilities[choices.index(choice)] if choice in choices else 0.0

    @property
    def confidence(self) -> float:
        """The probability of the judge's own answer (what a reliability curve bins)."""
        return max(self.probabilities)


@runtime_checkable
class Judge(Protocol):
    """Anything that judges TIFA-format questions about one image (np.uint8 (H, W, 3) RGB): one `Judgement` per
    question, in order."""

    def judge_all(self, image: np.ndarray, questions: list[dict]) -> list[Judgement]: ...


def judge_name(judge) -> str:
    return backend_name(judge)


def is_yes_no(question: dict) -> bool:
    return sorted(question["choices"]) == sorted(YES_NO)


def prompt_question(prompt_id: str, caption: str, atoms: Sequence[dict] | None = None) -> dict:
    """VQAScore's question about a whole prompt, in TIFA's format (its right answer: "yes").

    `atoms`: the prompt's own TIFA questions, for judges that answer from structure (the oracle)."""
    question = {
        "id": prompt_id,
        "caption": caption,
        "question": VQASCORE_TEMPLATE.format(prompt=caption),
        "choices": list(YES_NO),
        "answer": "yes",
        "element_type": WHOLE_PROMPT,
        "element": caption,
    }
    if atoms is not None:
        question["atoms"] = [dict(atom) for atom in atoms]
    return question


def _one_hot(question: dict, answer: str) -> Judgement:
    choices = list(question["choices"])
    return Judgement(answer, tuple(1.0 if choice == answer else 0.0 for choice in choices))


class AnswerJudge:
    """Any VQA backend as a judge: probability 1 on the answer it gives.

    A whole-prompt question (with `atoms`) is answered "yes" when the backend answers every atom as its key says.
    """

    def __init__(self, backend: VQABackend):
        self.backend = backend

    def describe(self) -> str:
        return f"{backend_name(self.backend)} (probability 1 on its answer)"

    def judge_all(self, image: np.ndarray, questions: list[dict]) -> list[Judgement]:
        plain = [q for q in questions if "atoms" not in q]
        atoms = [atom for q in questions if "atoms" in q for atom in q["atoms"]]
        answers = iter(self.backend.answer_all(image, plain + atoms) if plain or atoms else [])
        plain_answers = {id(q): next(answers) for q in plain}
        judgements = []
        for question in questions:
            if "atoms" in question:
                shown = all(next(answers) == atom["answer"] for atom in question["atoms"])
                judgements.append(_one_hot(question, "yes" if shown else "no"))
            else:
                judgements.append(_one_hot(question, plain_answers[id(question)]))
        return judgements


def oracle_judge(world) -> AnswerJudge:
    """The shapes world's exact oracle as a judge (probability 1)."""
    from t2iscale.eval.oracle import OracleVQA

    return AnswerJudge(OracleVQA(world))


class BlipJudge:
    """A local BLIP VQA model as a judge: choice probabilities = answer likelihoods normalized over the choices."""

    def __init__(self, blip: BlipVQA):
        self.blip = blip

    def describe(self) -> str:
        return f"BlipVQA({self.blip.source}, choice likelihoods normalized over the choices)"

    def judge_all(self, image: np.ndarray, questions: list[dict]) -> list[Judgement]:
        if not questions:
            return []
        judgements = []
        for question, probabilities in zip(questions, self.blip.choice_probabilities(image, questions)):
            best = int(np.argmax(probabilities))
            judgements.append(Judgement(question["choices"][best], tuple(float(p) for p in probabilities)))
        return judgements


class VQAScoreJudge:
    """VQAScore on a local BLIP VQA model: P("yes") is the decoder's probability of generating exactly "yes"
    (Lin et al. 2024); the answer is "yes" when that is at least 1/2. Yes/no questions only."""

    def __init__(self, blip: BlipVQA):
        self.blip = blip

    def describe(self) -> str:
        return f"VQAScore on BlipVQA({self.blip.source}): P(answer = 'yes'), unnormalized"

    def judge_all(self, image: np.ndarray, questions: list[dict]) -> list[Judgement]:
        if not questions:
            return []
        for question in questions:
            if not is_yes_no(question):
                raise UserError(
                    f"VQAScore judges yes/no questions only; {question['question']!r} has the choices "
                    f"{question['choices']!r}"
                )
        yes = self.blip.answer_probabilities(image, [q["question"] for q in questions], "yes")
        judgements = []
        for question, p_yes in zip(questions, yes):
            p_yes = float(np.clip(p_yes, 0.0, 1.0))
            by_choice = {"yes": p_yes, "no": 1.0 - p_yes}
            answer = "yes" if p_yes >= 0.5 else "no"
            judgements.append(Judgement(answer, tuple(by_choice[c] for c in question["choices"])))
        return judgements


@dataclass
class Judges:
    """The two judges an evaluation uses: one for TIFA's questions, one for VQAScore's whole-prompt question."""

    questions: Judge
    prompts: Judge

    def describe(self) -> dict:
        return {"questions": judge_name(self.questions), "prompts": judge_name(self.prompts)}


def resolve_judges(
    vqa_model: str | Path | None = None,
    world=None,
    vqa_backend: VQABackend | Judge | None = None,
    device: str = "cpu",
) -> Judges:
    """The judges from what the user gave: a judge or VQA backend object, else a local BLIP VQA model directory
    (`--vqa-model`), else the shapes world's oracle (`--world`). UserError when none is given."""
    if vqa_backend is not None:
        judge = vqa_backend if isinstance(vqa_backend, Judge) else AnswerJudge(vqa_backend)
        return Judges(judge, judge)
    if vqa_model is not None:
        blip = BlipVQA.from_pretrained(vqa_model, device=device)
        return Judges(BlipJudge(blip), VQAScoreJudge(blip))
    if world is not None:
        judge = oracle_judge(world)
        return Judges(judge, judge)
    raise UserError(
        "a judge is needed: --vqa-model DIR (a local BLIP VQA model) or --world NAME (the shapes world's oracle)"
    )

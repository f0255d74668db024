"""Judges (answer + probability): BLIP's normalized choice likelihoods, VQAScore's P("yes"), the oracle at
probability 1, Soft-TIFA's two means, and the soft_tifa / soft_tifa_gm / vqascore metrics, each through the real
loading code on a tiny random BLIP saved to disk."""

import json
import math

import numpy as np
import pytest
import torch
from test_vqa_blip import QUESTIONS, save_tiny_blip

from t2iscale.data.shapes.prompts import eval_prompt_set, ground_truth_scene
from t2iscale.data.shapes.render import render_scene
from t2iscale.errors import UserError
from t2iscale.eval.judges import (
    AnswerJudge,
    BlipJudge,
    Judge,
    Judgement,
    VQAScoreJudge,
    oracle_judge,
    prompt_question,
    resolve_judges,
)
from t2iscale.eval.manifest import ManifestEntry, save_image, write_manifest
from t2iscale.eval.score import score_images
from t2iscale.eval.tifa import score_judgements, soft_image_score


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("blip")
    save_tiny_blip(directory)
    return directory


def test_blip_judge_gives_the_choice_likelihoods_normalized_over_the_choices(blip_dir):
    judges = resolve_judges(vqa_model=blip_dir)
    assert isinstance(judges.questions, BlipJudge) and isinstance(judges.prompts, VQAScoreJudge)
    assert isinstance(judges.questions, Judge)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    judged = judges.questions.judge_all(image, QUESTIONS)
    blip = judges.questions.blip
    for question, judgement, scores in zip(QUESTIONS, judged, blip.choice_log_likelihoods(image, QUESTIONS)):
        expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        np.testing.assert_allclose(judgement.probabilities, expected, rtol=1e-6)
        assert sum(judgement.probabilities) == pytest.approx(1.0)
        assert judgement.answer == question["choices"][int(np.argmax(scores))]
    assert [j.answer for j in judged] == blip.answer_all(image, QUESTIONS)


def test_vqascore_is_the_decoders_own_probability_of_answering_yes(blip_dir):
    judges = resolve_judges(vqa_model=blip_dir)
    image = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    question = prompt_question("p1", "a red circle")
    assert question["question"] == "Does this figure show 'a red circle'? Please answer yes or no."
    [judgement] = judges.prompts.judge_all(image, [question])
    # Reference: BLIP's training loss on the answer "[DEC] yes [SEP]" is the mean token NLL.
    blip = judges.prompts.blip
    inputs = blip.processor(images=image, text=question["question"], return_tensors="pt")
    labels = blip.processor.tokenizer(["yes"], return_tensors="pt").input_ids
    labels[:, 0] = blip.decoder_start_token_id
    with torch.no_grad():
        loss = blip.model(**inputs, labels=labels).loss.item()
    p_yes = math.exp(-loss * (labels.shape[1] - 1))
    assert judgement.probability(question, "yes") == pytest.approx(p_yes, rel=1e-4)
    assert judgement.probability(question, "no") == pytest.approx(1 - p_yes, rel=1e-4)
    assert judgement.answer == ("yes" if p_yes >= 0.5 else "no")
    # Unnormalized: the choice-normalized judge's P(yes) is p_yes / (p_yes + p_no).
    p_no = blip.answer_probabilities(image, [question["question"]], "no")[0]
    [normalized] = judges.questions.judge_all(image, [question])
    assert normalized.probability(question, "yes") == pytest.approx(p_yes / (p_yes + p_no), rel=1e-4)
    assert p_yes + p_no < 1  # the rest goes to every other answer the decoder could give
    with pytest.raises(UserError, match="yes/no questions only"):
        judges.prompts.judge_all(image, QUESTIONS[1:2])


def test_the_oracle_judges_with_probability_one_and_reads_whole_prompts():
    prompts = [p for p in eval_prompt_set("tiny", per_category=4).prompts if p.category == "single_object"]
    own = prompts[0]
    foil = next(p for p in prompts if p.spec["include"][0]["shape"] != own.spec["include"][0]["shape"])
    image = render_scene(ground_truth_scene(own, 0), own.world, 64)
    judge = oracle_judge("tiny")
    judged = judge.judge_all(image, list(own.questions))
    for question, judgement in zip(own.questions, judged):
        assert judgement.answer == question["answer"]  # a ground-truth render
        assert sorted(judgement.probabilities) == [0.0] * (len(question["choices"]) - 1) + [1.0]
    whole = [
        prompt_question(own.id, own.caption, own.questions),
        prompt_question(foil.id, foil.caption, foil.questions),
    ]
    assert [j.answer for j in judge.judge_all(image, whole)] == ["yes", "no"]
    assert isinstance(AnswerJudge(judge.backend), Judge)


def _judgement(question, p_right):
    """A judgement that gives the right answer `p_right` and spreads the rest over the other choices."""
    others = len(question["choices"]) - 1
    probabilities = tuple(
        p_right if c == question["answer"] else (1 - p_right) / others for c in question["choices"]
    )
    return Judgement(question["choices"][int(np.argmax(probabilities))], probabilities)


def test_soft_tifa_is_the_mean_probability_of_the_right_answers():
    p1 = [q for q in QUESTIONS if q.get("id") == "p1"]
    questions = [
        dict(q, id="p1", caption="c1", answer=q["choices"][0], element_type="e", element="x")
        for q in QUESTIONS[:2]
    ]
    assert not p1  # the BLIP test questions carry no ids; these do
    judged = [("p1", [_judgement(questions[0], 0.5), _judgement(questions[1], 0.9)])]
    arithmetic = score_judgements(questions, judged, "arithmetic")
    geometric = score_judgements(questions, judged, "geometric")
    assert arithmetic["score"] == pytest.approx(0.7)
    assert geometric["score"] == pytest.approx(math.sqrt(0.45))
    # The first question's judgement is a tie broken towards the right answer: hard TIFA counts both right.
    assert arithmetic["hard_tifa"] == 1.0
    assert arithmetic["chance_level"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert geometric["chance_level"] == pytest.approx(math.sqrt(1 / 2 * 1 / 4))
    assert soft_image_score([0.9, 0.0], "geometric") == 0.0
    with pytest.raises(UserError, match="unknown Soft-TIFA mean"):
        score_judgements(questions, judged, "harmonic")


@pytest.fixture
def shapes_folder(tmp_path):
    """Ground-truth renders of 6 shapes prompts (one per category) x 2 seeds, with their manifest."""
    prompts = eval_prompt_set("tiny", per_category=1).prompts
    entries = []
    for prompt in prompts:
        for seed in (0, 1):
            path = f"images/{prompt.id}_s{seed}.png"
            save_image(tmp_path / path, render_scene(ground_truth_scene(prompt, seed), prompt.world, 32))
            entries.append(ManifestEntry(prompt.id, seed, path))
    write_manifest(tmp_path / "manifest.jsonl", entries)
    return tmp_path


def test_soft_metrics_and_vqascore_through_a_local_blip(shapes_folder, blip_dir):
    metrics = ["tifa", "soft_tifa", "soft_tifa_gm", "vqascore"]
    common = dict(shapes_prompts="v1", world="tiny", per_category=1, progress=False)
    results = score_images(shapes_folder / "manifest.jsonl", metrics, vqa_model=blip_dir, **common)
    for metric in metrics:
        written = json.loads((shapes_folder / "eval" / f"{metric}.json").read_text())
        assert written == results[metric]
        assert written["interval"]["n_prompts"] == 6 and len(written["samples"]["value"]) == 12
        assert 0.0 <= written["interval"]["lo"] <= written["score"] <= written["interval"]["hi"] <= 1.0
    soft, geometric = results["soft_tifa"], results["soft_tifa_gm"]
    assert str(blip_dir) in soft["judge"] and soft["hard_tifa"] == pytest.approx(results["tifa"]["score"])
    assert geometric["score"] <= soft["score"]  # a geometric mean never exceeds the arithmetic one
    assert "unnormalized" in results["vqascore"]["judge"]
    # The oracle (probability 1): Soft-TIFA is TIFA, VQAScore the strict share of images with every answer right.
    oracle = score_images(shapes_folder / "manifest.jsonl", metrics, out_dir=shapes_folder / "o", **common)
    assert oracle["soft_tifa"]["score"] == oracle["tifa"]["score"] == 1.0
    assert oracle["vqascore"]["score"] == oracle["soft_tifa_gm"]["score"] == 1.0


def test_a_soft_metric_without_questions_or_judge_fails_before_any_work(shapes_folder):
    with pytest.raises(UserError, match="Soft-TIFA needs questions"):
        score_images(shapes_folder / "manifest.jsonl", "soft_tifa", progress=False)
    with pytest.raises(UserError, match="VQAScore needs a judge"):
        score_images(shapes_folder / "manifest.jsonl", "vqascore", progress=False)

"""TIFA scorer: format validation, grouping, per-prompt and breakdown scores, chance level."""

import json
from pathlib import Path

import numpy as np
import pytest

from t2iscale.errors import UserError
from t2iscale.eval.tifa import (
    chance_level,
    check_prompts_have_questions,
    load_questions,
    questions_by_prompt,
    run_tifa,
    score_answers,
    validate_questions,
)
from t2iscale.eval.vqa import VQABackend

REPO = Path(__file__).resolve().parents[2]
SAMPLE_QUESTIONS = REPO.parent / "shared" / "benchmarks" / "tifa" / "sample_question_answers.json"


def question(prompt_id, text, choices, answer, element_type="object", **extra):
    return {
        "id": prompt_id,
        "caption": f"caption of {prompt_id}",
        "question": text,
        "choices": choices,
        "answer": answer,
        "element_type": element_type,
        "element": "thing",
        **extra,
    }


FIXTURE = [
    question("p1", "is there a cat?", ["yes", "no"], "yes", "animal/human", category="single"),
    question(
        "p1", "what color is the cat?", ["red", "blue", "green", "black"], "red", "color", category="single"
    ),
    question("p2", "how many dogs?", ["1", "2", "3"], "2", "counting", category="count"),
    question("p2", "is there a dog?", ["yes", "no"], "yes", "animal/human", category="count"),
    question("p2", "is the dog red?", ["yes", "no"], "no", "color", category="count"),
]


class FixedAnswers:
    """A fake VQA backend: answers from a table keyed by question text, default the first choice."""

    def __init__(self, table):
        self.table = table

    def answer_all(self, image, questions):
        return [self.table.get(q["question"], q["choices"][0]) for q in questions]


def test_fixture_validates_and_groups_in_order(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps(FIXTURE))
    questions = load_questions(path)
    groups = questions_by_prompt(questions)
    assert list(groups) == ["p1", "p2"]
    assert [q["question"] for q in groups["p2"]] == ["how many dogs?", "is there a dog?", "is the dog red?"]


def test_chance_level_is_mean_over_prompts_of_mean_inverse_choices():
    expected = np.mean([np.mean([1 / 2, 1 / 4]), np.mean([1 / 3, 1 / 2, 1 / 2])])
    assert chance_level(FIXTURE) == pytest.approx(expected)


def test_scores_per_prompt_breakdowns_and_several_images_per_prompt():
    groups = questions_by_prompt(FIXTURE)
    all_right = {q["question"]: q["answer"] for q in FIXTURE}
    answered = [
        ("p1", [all_right[q["question"]] for q in groups["p1"]]),  # 2/2
        ("p2", ["2", "yes", "yes"]),  # 2/3: the color question wrong
        ("p2", ["1", "yes", "no"]),  # 2/3: the count wrong
    ]
    result = score_answers(FIXTURE, answered)
    assert result["per_prompt"]["p1"]["score"] == 1.0
    assert result["per_prompt"]["p2"]["score"] == pytest.approx(2 / 3)
    assert result["per_prompt"]["p2"]["n_images"] == 2
    assert result["score"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["n_images"] == 3 and result["n_prompts"] == 2 and result["n_answers"] == 8
    assert result["by_element_type"]["color"]["accuracy"] == pytest.approx(2 / 3)  # p1 right, p2 once wrong
    assert result["by_element_type"]["counting"]["accuracy"] == pytest.approx(1 / 2)
    assert result["by_element_type"]["animal/human"]["accuracy"] == 1.0
    assert result["by_category"]["single"]["score"] == 1.0
    assert result["by_category"]["count"]["score"] == pytest.approx(2 / 3)
    assert result["by_category"]["count"]["chance_level"] == pytest.approx(np.mean([1 / 3, 1 / 2, 1 / 2]))
    assert result["chance_level"] == pytest.approx(chance_level(FIXTURE))
    # each image's score per element type (None where its prompt asks none of that type), in answered order
    assert result["element_image_scores"] == {
        "animal/human": [1.0, 1.0, 1.0],
        "color": [1.0, 0.0, 1.0],
        "counting": [None, 1.0, 0.0],
    }


def test_run_tifa_with_any_backend():
    perfect = FixedAnswers({q["question"]: q["answer"] for q in FIXTURE})
    assert isinstance(perfect, VQABackend)
    image = np.zeros((8, 8, 3), np.uint8)
    result = run_tifa([("p1", image), ("p2", image)], FIXTURE, perfect, progress=False)
    assert result["score"] == 1.0
    # Always answering the first choice: p1 gets "yes" right and "red" right; p2 gets only "yes" right.
    result = run_tifa([("p1", image), ("p2", image)], FIXTURE, FixedAnswers({}), progress=False)
    assert result["per_prompt"]["p2"]["score"] == pytest.approx(1 / 3)


def test_unknown_prompt_and_non_choice_answers_are_errors():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UserError, match="'p9' has no questions"):
        run_tifa([("p9", image)], FIXTURE, FixedAnswers({}), progress=False)
    with pytest.raises(UserError, match=r"'p7'.*has no questions in q\.json"):
        check_prompts_have_questions(["p1", "p7"], FIXTURE, "q.json")
    with pytest.raises(ValueError, match="not one of the choices"):
        score_answers(FIXTURE, [("p1", ["maybe", "red"])])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.pop("answer"), "entry 3 \\(id 'p2'\\): missing key 'answer'"),
        (lambda e: e.update(answer="4"), "answer '4' is not one of the choices"),
        (lambda e: e.update(choices=[]), "'choices' is empty"),
        (lambda e: e.update(choices="yes,no"), "'choices' must be a list, got str"),
        (lambda e: e.update(choices=["yes", 1]), "every choice must be a string"),
        (lambda e: e.update(question=7), "'question' must be a str, got int"),
        (lambda e: e.update(caption="another"), "caption 'another' differs"),
        (lambda e: e.update(category="other"), "category 'other' differs"),
        (lambda e: e.update(coco_val_id=[1]), "'coco_val_id' has the wrong type"),
    ],
)
def test_malformed_entries_name_file_index_id_and_problem(tmp_path, change, message):
    entries = json.loads(json.dumps(FIXTURE))
    change(entries[3])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(UserError, match=message) as error:
        load_questions(path)
    assert str(path) in str(error.value) and "entry 3" in str(error.value)


def test_malformed_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_questions(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_questions(bad)
    bad.write_text(json.dumps({"id": "x"}))
    with pytest.raises(UserError, match="expected a JSON list"):
        load_questions(bad)
    bad.write_text("[]")
    with pytest.raises(UserError, match="empty"):
        load_questions(bad)
    with pytest.raises(UserError, match="entry 0: expected an object"):
        validate_questions(["q"], "x.json")


def test_real_tifa_sample_file_parses_and_scores(tmp_path):
    if SAMPLE_QUESTIONS.is_file():
        path = SAMPLE_QUESTIONS
    else:  # without the shared benchmark folder: a stand-in in the same format
        path = tmp_path / "sample.json"
        path.write_text(json.dumps([{k: v for k, v in q.items() if k != "category"} for q in FIXTURE]))
    questions = load_questions(path)
    groups = questions_by_prompt(questions)
    assert len(groups) >= 2 and all(len(group) >= 2 for group in groups.values())
    if path == SAMPLE_QUESTIONS:
        assert set(groups) == {"coco_301091", "drawbench_52"} and len(questions) == 19
    perfect = FixedAnswers({q["question"]: q["answer"] for q in questions})
    image = np.zeros((8, 8, 3), np.uint8)
    result = run_tifa([(pid, image) for pid in groups], questions, perfect, progress=False)
    assert result["score"] == 1.0
    assert "by_category" not in result
    assert set(result["by_element_type"]) == {q["element_type"] for q in questions}
    assert 0 < result["chance_level"] < 1

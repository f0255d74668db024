"""The BLIP VQA backend, on a tiny random BLIP saved to disk and loaded back through the real loader."""

import numpy as np
import pytest
import torch

from t2iscale.errors import UserError
from t2iscale.eval.vqa import BlipVQA, VQABackend, backend_name
from tiny_blip import save_tiny_blip as save_blip_with_words

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "is", "there", "a", "what", "color", "the"]
WORDS += ["circle", "square", "?", "yes", "no", "red", "blue", "green", "car", "how", "many", "one", "two"]


def save_tiny_blip(directory, favour_token: str | None = None):
    """The tiny BLIP with this module's vocabulary (other eval tests import it from here)."""
    return save_blip_with_words(directory, WORDS, favour_token)


QUESTIONS = [
    {"question": "is there a red circle?", "choices": ["yes", "no"]},
    {"question": "what color is the circle?", "choices": ["red", "blue", "green", "red car"]},
    {"question": "how many squares?", "choices": ["one", "two"]},
]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    directory = tmp_path_factory.mktemp("blip")
    model, tokenizer, vocab = save_tiny_blip(directory)
    return directory, model, tokenizer, vocab


def test_loads_from_a_local_directory_and_answers_one_choice_per_question(tiny_blip):
    directory, *_ = tiny_blip
    vqa = BlipVQA.from_pretrained(directory)
    assert isinstance(vqa, VQABackend)
    assert str(directory) in backend_name(vqa)
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    answers = vqa.answer_all(image, QUESTIONS)
    assert [answer in q["choices"] for answer, q in zip(answers, QUESTIONS)] == [True] * 3
    assert vqa.answer_all(image, []) == []


def test_choice_scores_equal_the_models_own_answer_likelihood(tiny_blip):
    directory, model, tokenizer, vocab = tiny_blip
    vqa = BlipVQA.from_pretrained(directory)
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    batched = vqa.choice_log_likelihoods(image, QUESTIONS)
    # Batching questions and padding choices must not change any score.
    alone = vqa.choice_log_likelihoods(image, QUESTIONS[1:2])
    np.testing.assert_allclose(batched[1], alone[0], rtol=1e-4, atol=1e-4)
    # Reference: BLIP's training loss on the answer "[DEC] red car [SEP]" is the mean token NLL.
    inputs = vqa.processor(images=image, text=QUESTIONS[1]["question"], return_tensors="pt")
    labels = tokenizer(["red car"], return_tensors="pt").input_ids
    labels[:, 0] = vocab["[DEC]"]
    with torch.no_grad():
        loss = vqa.model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=inputs["pixel_values"],
            labels=labels,
        ).loss
    assert batched[1][3] == pytest.approx(-loss.item() * (labels.shape[1] - 1), rel=1e-4)


def test_the_most_likely_choice_wins(tmp_path):
    save_tiny_blip(tmp_path, favour_token="blue")
    vqa = BlipVQA.from_pretrained(tmp_path)
    image = np.zeros((32, 32, 3), np.uint8)
    assert vqa.answer_all(image, QUESTIONS[1:2]) == ["blue"]
    reordered = [{"question": "what color is the circle?", "choices": ["green", "red", "blue"]}]
    assert vqa.answer_all(image, reordered) == ["blue"]


def test_missing_or_bad_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        BlipVQA.from_pretrained(tmp_path / "nope")
    with pytest.raises(UserError, match="no config.json"):
        BlipVQA.from_pretrained(tmp_path)

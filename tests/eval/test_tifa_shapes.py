"""TIFA with the shapes world's oracle: ground truth scores 1, noise scores chance, swapped colors lose color only."""

import dataclasses

import numpy as np
import pytest

from t2iscale.data.shapes import eval_prompt_set, ground_truth_scene, render_scene, resolve_world
from t2iscale.eval.oracle import OracleVQA
from t2iscale.eval.tifa import chance_level, run_tifa
from t2iscale.eval.vqa import VQABackend

RESOLUTION = 32


@pytest.fixture(scope="module")
def tiny():
    world = resolve_world("tiny")
    prompt_set = eval_prompt_set(world, version="v1", per_category=3)
    return world, prompt_set, OracleVQA(world)


def test_ground_truth_renders_score_one_in_every_category(tiny):
    world, prompt_set, oracle = tiny
    assert isinstance(oracle, VQABackend)
    images = [
        (prompt.id, render_scene(ground_truth_scene(prompt, seed), world, RESOLUTION))
        for prompt in prompt_set.prompts
        for seed in (0, 1)
    ]
    result = run_tifa(images, prompt_set.questions(), oracle, progress=False)
    assert result["score"] == 1.0
    assert set(result["by_category"]) == {p.category for p in prompt_set.prompts}
    assert all(c["score"] == 1.0 for c in result["by_category"].values())
    assert all(e["accuracy"] == 1.0 for e in result["by_element_type"].values())
    assert result["chance_level"] == pytest.approx(chance_level(prompt_set.questions()))
    assert result["n_images"] == 2 * len(prompt_set.prompts)


def test_noise_scores_near_chance(tiny):
    world, prompt_set, oracle = tiny
    rng = np.random.default_rng(0)
    images = [
        (prompt.id, rng.integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8))
        for prompt in prompt_set.prompts
    ]
    result = run_tifa(images, prompt_set.questions(), oracle, progress=False)
    assert 0.3 < result["chance_level"] < 0.6
    assert abs(result["score"] - result["chance_level"]) < 0.1


def swapped_color_questions(prompt, color_a, color_b):
    """The questions whose true answer a swap of the two colors changes: TIFA color questions naming either
    color, and every "what color is ..." question."""
    return [
        q["question"]
        for q in prompt.questions
        if q["element_type"] == "color"
        and (q["query"]["op"] == "color_of" or q["query"].get("color") in (color_a, color_b))
    ]


def test_swapped_colors_lose_exactly_the_color_questions(tiny):
    world, prompt_set, oracle = tiny
    prompts = [p for p in prompt_set.prompts if p.category == "color_attr"]
    assert prompts
    for prompt in prompts:
        scene = ground_truth_scene(prompt, seed=0)
        first, second = scene.objects
        assert first.color != second.color
        swapped = dataclasses.replace(
            scene,
            objects=[
                dataclasses.replace(first, color=second.color),
                dataclasses.replace(second, color=first.color),
            ],
        )
        image = render_scene(swapped, world, RESOLUTION)
        answers = oracle.answer_all(image, list(prompt.questions))
        wrong = [q["question"] for q, a in zip(prompt.questions, answers) if a != q["answer"]]
        assert wrong == swapped_color_questions(prompt, first.color, second.color)
        assert wrong  # the swap is visible
        result = run_tifa([(prompt.id, image)], list(prompt.questions), oracle, progress=False)
        assert result["score"] == pytest.approx(1 - len(wrong) / len(prompt.questions))
        assert result["by_element_type"]["color"]["accuracy"] < 1
        assert all(e["accuracy"] == 1.0 for t, e in result["by_element_type"].items() if t != "color")

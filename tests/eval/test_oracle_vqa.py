"""The oracle VQA: >= 99% right on ground-truth renders (every category, 32 and 64 px), chance on noise."""

import dataclasses
import random
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from t2iscale.data.shapes import eval_prompt_set, ground_truth_scene, render_scene, sample_scene, world_preset
from t2iscale.data.shapes.prompts import check_answer_key
from t2iscale.errors import UserError
from t2iscale.eval.oracle import OracleVQA


@pytest.fixture(scope="module", params=["tiny", "default"])
def setup(request):
    world = world_preset(request.param)
    return world, eval_prompt_set(world, per_category=8), OracleVQA(world)


@pytest.mark.parametrize("resolution", [32, 64])
def test_right_on_ground_truth_renders_in_every_category(setup, resolution):
    world, prompt_set, oracle = setup
    correct = defaultdict(list)
    for prompt in prompt_set.prompts:
        for seed in (0, 1):
            image = render_scene(ground_truth_scene(prompt, seed), world, resolution)
            answers = oracle.answer_all(image, list(prompt.questions))
            correct[prompt.category] += [a == q["answer"] for a, q in zip(answers, prompt.questions)]
    assert len(correct) == 6
    for category, values in correct.items():
        assert np.mean(values) >= 0.99, category
    assert np.mean([v for values in correct.values() for v in values]) >= 0.99


def test_parses_random_training_scenes(setup):
    world, _, oracle = setup
    rng = random.Random(1)
    for _ in range(60):
        scene = sample_scene(world, rng)
        parsed = oracle.parse(render_scene(scene, world, 32))
        truth = sorted((o.shape, o.color) for o in scene.objects)
        assert sorted((o.shape, o.color) for o in parsed.objects) == truth
        for obj in scene.objects:
            nearest = min(parsed.objects, key=lambda p: (p.x - obj.x) ** 2 + (p.y - obj.y) ** 2)
            assert abs(nearest.x - obj.x) < 1 / 32 and abs(nearest.y - obj.y) < 1 / 32  # within a pixel
            assert nearest.size == obj.size


@pytest.mark.parametrize("kind", ["uniform", "gaussian"])
def test_pure_noise_scores_near_chance(setup, kind):
    world, prompt_set, oracle = setup
    rng = np.random.default_rng(0)
    scores, chances = [], []
    for prompt in prompt_set.prompts * 2:
        if kind == "uniform":
            image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        else:
            image = np.clip(rng.normal(128, 64, (32, 32, 3)), 0, 255).astype(np.uint8)
        answers = oracle.answer_all(image, list(prompt.questions))
        scores.append(np.mean([a == q["answer"] for a, q in zip(answers, prompt.questions)]))
        chances.append(np.mean([1 / len(q["choices"]) for q in prompt.questions]))
    assert abs(np.mean(scores) - np.mean(chances)) < 0.06


def test_swapping_two_colors_changes_exactly_the_color_answers(setup):
    world, prompt_set, oracle = setup
    for prompt in (p for p in prompt_set.prompts if p.category == "color_attr"):
        scene = ground_truth_scene(prompt, seed=0)
        first, second = scene.objects
        swapped = dataclasses.replace(
            scene,
            objects=[
                dataclasses.replace(first, color=second.color),
                dataclasses.replace(second, color=first.color),
            ],
        )
        before = oracle.answer_all(render_scene(scene, world, 32), list(prompt.questions))
        after = oracle.answer_all(render_scene(swapped, world, 32), list(prompt.questions))
        assert after == check_answer_key(prompt, swapped)  # right about the edited scene too
        changed = {q["element_type"] for q, a, b in zip(prompt.questions, before, after) if a != b}
        assert changed == {"color"}
        assert all(a == b for q, a, b in zip(prompt.questions, before, after) if q["element_type"] != "color")


def test_tolerates_blur_and_washed_out_colors():
    world = world_preset("tiny")
    prompt_set, oracle = eval_prompt_set(world, per_category=8), OracleVQA(world)
    correct = []
    for prompt in prompt_set.prompts:
        image = render_scene(ground_truth_scene(prompt, 0), world, 32).astype(np.float64)
        image = ndimage.gaussian_filter(image, (0.8, 0.8, 0))  # soft edges, like a small model's samples
        image = 0.75 * image + 0.25 * np.asarray(world.background)  # colors a quarter toward the background
        answers = oracle.answer_all(image.round().astype(np.uint8), list(prompt.questions))
        correct += [a == q["answer"] for a, q in zip(answers, prompt.questions)]
    assert np.mean(correct) >= 0.97


def test_is_deterministic_and_reads_pil_images(setup):
    world, prompt_set, oracle = setup
    prompt = prompt_set.prompts[-1]
    image = render_scene(ground_truth_scene(prompt, 3), world, 32)
    questions = list(prompt.questions)
    assert oracle.answer_all(image, questions) == oracle.answer_all(Image.fromarray(image), questions)
    assert [oracle.answer(image, q) for q in questions] == oracle.answer_all(image, questions)
    assert oracle.parse(image) == oracle.parse(image.copy())


def test_features_have_a_fixed_length_and_count_objects(setup):
    world, prompt_set, oracle = setup
    names = oracle.feature_names()
    counting = next(p for p in prompt_set.prompts if p.category == "counting")
    scene = ground_truth_scene(counting, 0)
    features = oracle.features(render_scene(scene, world, 32))
    assert features.shape == (len(names),) and features.dtype == np.float64
    assert features[names.index("objects")] == len(scene.objects)
    for obj in scene.objects:
        assert features[names.index(f"count/{obj.color}/{obj.shape}")] >= 1
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert oracle.features(noise).shape == features.shape


def test_questions_without_a_query_are_user_errors():
    oracle = OracleVQA("tiny")
    image = np.full((32, 32, 3), 128, dtype=np.uint8)
    with pytest.raises(UserError, match="query"):
        oracle.answer(image, {"id": "x", "question": "is this a surfer?", "choices": ["yes", "no"]})
    with pytest.raises(UserError, match="RGB"):
        oracle.parse(np.zeros((32, 32), dtype=np.uint8))

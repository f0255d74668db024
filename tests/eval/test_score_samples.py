"""Per-image scores ("samples") of TIFA and CLIP score: one per (prompt, eval seed), in manifest order, averaging
to the headline values, and carrying the prompts' categories when the questions have them."""

import json
import warnings

import numpy as np
import pytest
from test_clip_score import images, reference_clip_score, save_tiny_clip
from test_score_images import QUESTIONS, MeanColorVQA
from test_score_shapes import PER_CATEGORY, RESOLUTION, ground_truth

from t2iscale.data.shapes import eval_prompt_set, resolve_world
from t2iscale.eval.clip_score import ClipScorer
from t2iscale.eval.manifest import ManifestEntry, save_image, write_manifest
from t2iscale.eval.samples import SampleScores
from t2iscale.eval.score import score_images

SEEDS = (0, 5, 9)  # not 0..n-1, so a seed cannot pass for an index


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clip")
    save_tiny_clip(directory)
    return directory


def shuffled_shapes_run(folder):
    """The tiny world's v1 prompts × SEEDS in a shuffled manifest: seed 0 a ground-truth render, others noise.

    Returns (manifest path, entries in manifest order, prompt id -> category).
    """
    world = resolve_world("tiny")
    prompts = eval_prompt_set(world, "v1", per_category=PER_CATEGORY).prompts
    rng = np.random.default_rng(0)
    entries = []
    for prompt in prompts:
        for seed in SEEDS:
            if seed == 0:
                image = ground_truth(world, prompt, seed)
            else:
                image = rng.integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
            path = f"images/{prompt.id}_{seed}.png"
            save_image(folder / path, image)
            entries.append(ManifestEntry(prompt.id, seed, path, caption=prompt.caption))
    entries = [entries[i] for i in rng.permutation(len(entries))]
    categories = {prompt.id: prompt.category for prompt in prompts}
    return write_manifest(folder / "manifest.jsonl", entries), entries, categories


def shapes_kwargs(out_dir):
    return dict(shapes_prompts="v1", world="tiny", per_category=PER_CATEGORY, out_dir=out_dir, progress=False)


def test_tifa_samples_follow_the_manifest_and_average_to_the_prompt_scores(tmp_path):
    manifest, entries, categories = shuffled_shapes_run(tmp_path)
    result = score_images(manifest, "tifa", **shapes_kwargs(tmp_path / "out"))["tifa"]
    samples = result["samples"]
    assert json.loads((tmp_path / "out" / "eval" / "tifa.json").read_text())["samples"] == samples
    assert "image_scores" not in result  # folded into the samples
    assert samples["prompt_id"] == [entry.prompt_id for entry in entries]
    assert samples["seed"] == [entry.seed for entry in entries]
    assert samples["category"] == [categories[entry.prompt_id] for entry in entries]
    assert len(SampleScores.from_dict(samples)) == result["n_images"] == len(categories) * len(SEEDS)

    # Each value is its own image's score: ground-truth renders answer everything, noise does not.
    value = dict(zip(zip(samples["prompt_id"], samples["seed"]), samples["value"]))
    assert all(value[(prompt_id, 0)] == 1.0 for prompt_id in categories)
    assert min(value.values()) < 1.0
    for prompt_id, entry in result["per_prompt"].items():
        mean = np.mean([value[(prompt_id, seed)] for seed in SEEDS])
        assert mean == pytest.approx(entry["score"], abs=1e-12)
    per_prompt_means = [entry["score"] for entry in result["per_prompt"].values()]
    assert np.mean(per_prompt_means) == pytest.approx(result["score"], abs=1e-12)
    scores = SampleScores.from_dict(samples)
    for category, entry in result["by_category"].items():
        assert scores.only_category(category).mean == pytest.approx(entry["score"], abs=1e-12)


def test_tifa_samples_leave_out_categories_the_questions_lack(tmp_path):
    # MeanColorVQA answers right on bright images and picks the first choice on dark ones, which is right for
    # both questions of p1 and wrong for p2's: dark p2 images score 0, every other image 1.
    entries = []
    for index, (prompt_id, seed, level) in enumerate(
        [("p2", 7, 200), ("p1", 7, 20), ("p2", 3, 20), ("p1", 3, 200)]
    ):
        path = f"images/{index}.png"
        save_image(tmp_path / path, np.full((8, 8, 3), level, dtype=np.uint8))
        entries.append(ManifestEntry(prompt_id, seed, path))
    write_manifest(tmp_path / "manifest.jsonl", entries)
    (tmp_path / "questions.json").write_text(json.dumps(QUESTIONS))
    result = score_images(
        tmp_path / "manifest.jsonl",
        "tifa",
        questions=tmp_path / "questions.json",
        vqa_backend=MeanColorVQA(),
        progress=False,
    )["tifa"]
    assert result["samples"] == {
        "prompt_id": ["p2", "p1", "p2", "p1"],
        "seed": [7, 7, 3, 3],
        "value": [1.0, 1.0, 0.0, 1.0],
    }
    assert result["per_prompt"]["p2"]["score"] == 0.5 and result["score"] == 0.75


def test_clip_per_image_scores_are_the_models_and_average_to_the_clip_score(clip_dir):
    scorer = ClipScorer(clip_dir)
    pictures = images(5, seed=1)
    captions = ["a cat", "short", "red", "a cat", "blue"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # short captions: nothing truncated
        result = scorer.score(pictures, captions, batch_size=2)  # three batches, the last one short
    per_image = result["image_scores"]
    expected = [reference_clip_score(scorer, image, caption) for image, caption in zip(pictures, captions)]
    assert per_image == pytest.approx(expected, abs=1e-3)
    # torchmetrics clamps only the mean at 0: a negative image score stays in the mean, and in the samples.
    assert min(per_image) < 0 < 1 < result["clip_score"]
    assert np.mean(per_image) == pytest.approx(result["clip_score"], rel=1e-5)

    negative = scorer.score(images(2, seed=0), ["a cat", "a dog"])
    assert np.mean(negative["image_scores"]) < 0 and negative["clip_score"] == 0.0


def test_clip_samples_are_keyed_by_the_manifests_prompts_and_seeds(tmp_path, clip_dir):
    rows = [("p1", 4, "a cat"), ("p2", 4, "short"), ("p1", 11, "a cat"), ("p3", 0, "red")]
    for (prompt_id, seed, _), image in zip(rows, images(len(rows))):
        save_image(tmp_path / f"{prompt_id}_{seed}.png", image)
    write_manifest(
        tmp_path / "manifest.jsonl",
        [
            ManifestEntry(prompt_id, seed, f"{prompt_id}_{seed}.png", caption)
            for prompt_id, seed, caption in rows
        ],
    )
    result = score_images(tmp_path / "manifest.jsonl", "clip", clip_model=clip_dir, progress=False)["clip"]
    samples = result["samples"]
    assert json.loads((tmp_path / "eval" / "clip.json").read_text()) == result
    assert "image_scores" not in result and "category" not in samples  # manifest captions, no questions
    assert list(zip(samples["prompt_id"], samples["seed"])) == [
        (prompt_id, seed) for prompt_id, seed, _ in rows
    ]
    assert result["clip_score"] > 1
    assert np.mean(samples["value"]) == pytest.approx(result["clip_score"], rel=1e-5)


def test_tifa_and_clip_samples_share_their_pairs_and_categories(tmp_path, clip_dir):
    manifest, _, _ = shuffled_shapes_run(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the tiny CLIP truncates the shapes captions
        results = score_images(manifest, "tifa,clip", clip_model=clip_dir, **shapes_kwargs(tmp_path / "out"))
    tifa, clip = results["tifa"]["samples"], results["clip"]["samples"]
    for key in ("prompt_id", "seed", "category"):
        assert clip[key] == tifa[key]

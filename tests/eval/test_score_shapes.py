"""`t2iscale eval score` on the shapes world: oracle TIFA and oracle FID, references from ground-truth renders."""

import json

import numpy as np
import pytest

from t2iscale.cli import main
from t2iscale.data.shapes import eval_prompt_set, ground_truth_scene, render_scene, resolve_world
from t2iscale.errors import UserError
from t2iscale.eval.manifest import ManifestEntry, save_image, write_manifest
from t2iscale.eval.score import score_images

RESOLUTION = 32
PER_CATEGORY = 1


def write_run(folder, make_image, per_category=PER_CATEGORY, seeds=(0, 1)):
    """A manifest over the tiny world's v1 prompt set (1 prompt per category, 2 seeds) and its images."""
    world = resolve_world("tiny")
    entries = []
    for prompt in eval_prompt_set(world, "v1", per_category=per_category).prompts:
        for seed in seeds:
            path = f"images/{prompt.id}_{seed}.png"
            save_image(folder / path, make_image(world, prompt, seed))
            entries.append(ManifestEntry(prompt.id, seed, path, caption=prompt.caption))
    return write_manifest(folder / "manifest.jsonl", entries)


def ground_truth(world, prompt, seed):
    return render_scene(ground_truth_scene(prompt, seed), world, RESOLUTION)


def noise(world, prompt, seed):
    rng = np.random.default_rng(abs(hash((prompt.id, seed))) % 2**32)
    return rng.integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8)


def shapes_args(manifest):
    return ["--manifest", str(manifest), "--shapes-prompts", "v1", "--world", "tiny"] + [
        "--per-category",
        str(PER_CATEGORY),
    ]


def test_cli_on_ground_truth_renders(tmp_path, capsys):
    manifest = write_run(tmp_path, ground_truth)
    assert main(["eval", "score", *shapes_args(manifest), "--metrics", "tifa"]) == 0
    printed = capsys.readouterr().out
    assert "TIFA 1.0000" in printed
    tifa = json.loads((tmp_path / "eval" / "tifa.json").read_text())
    assert tifa["score"] == 1.0 and tifa["n_prompts"] == 6 and tifa["n_images"] == 12
    # every image right: the interval over the prompts has no width
    assert "TIFA 1.0000 [1.0000, 1.0000] (95%, over prompts)" in printed
    assert tifa["interval"]["n_prompts"] == 6 and tifa["interval"]["n_samples"] == 12
    assert set(tifa["by_category"]) == {
        "single_object",
        "two_object",
        "counting",
        "colors",
        "position",
        "color_attr",
    }
    assert tifa["vqa_backend"].startswith("shapes-oracle") and "v1" in tifa["questions"]

    # The oracle FID: 12 images are fewer than the tiny world's 31 oracle features (issue 14, item 9); 36 are not.
    assert main(["eval", "score", *shapes_args(manifest), "--metrics", "oracle_fid"]) != 0
    assert "at least 31 reference and 31 generated images" in capsys.readouterr().err
    manifest = write_run(tmp_path / "more", ground_truth, seeds=range(6))
    assert main(["eval", "score", *shapes_args(manifest), "--metrics", "oracle_fid"]) == 0
    assert "oracle FID 0.0000 (36 generated vs 36 reference images)" in capsys.readouterr().out
    fid = json.loads((tmp_path / "more" / "eval" / "oracle_fid.json").read_text())
    assert "ground-truth renders" in fid["reference"]  # the output says what the reference is
    assert fid["fid"] == pytest.approx(0.0, abs=1e-4)  # the references are these very images
    assert fid["n_reference"] == fid["n_generated"] == 36


def test_noise_scores_near_chance_and_far_in_oracle_features(tmp_path):
    manifest = write_run(tmp_path, noise, seeds=range(6))  # 36 images: more than the 31 oracle features
    results = score_images(
        manifest,
        "tifa,oracle_fid",
        shapes_prompts="v1",
        world="tiny",
        per_category=PER_CATEGORY,
        out_dir=tmp_path / "out",
        progress=False,
    )
    assert abs(results["tifa"]["score"] - results["tifa"]["chance_level"]) < 0.15
    interval = results["tifa"]["interval"]
    assert 0.0 <= interval["lo"] < results["tifa"]["score"] < interval["hi"] <= 1.0
    for name, category in results["tifa"]["by_category"].items():
        # one prompt per category: no interval over prompts, and the result says why
        assert category["interval"] is None and "at least 2 prompts, got 1" in category["no_interval"], name
    assert results["oracle_fid"]["fid"] > 1.0
    assert (tmp_path / "out" / "eval" / "oracle_fid.json").is_file()


def test_shapes_prompts_need_a_world_and_known_prompt_ids(tmp_path):
    manifest = write_run(tmp_path, ground_truth)
    with pytest.raises(UserError, match="needs a shapes world"):
        score_images(manifest, "tifa", shapes_prompts="v1")
    with pytest.raises(UserError, match="unknown shapes world 'nowhere'"):
        score_images(manifest, "tifa", shapes_prompts="v1", world="nowhere")
    # A smaller prompt set than the one generated: ids missing from it are named.
    extra = json.loads(manifest.read_text().splitlines()[0])
    extra["prompt_id"] = "shapes_v1_single_object_007"
    with manifest.open("a") as file:
        file.write(json.dumps(extra) + "\n")
    with pytest.raises(UserError, match="'shapes_v1_single_object_007' has no questions"):
        score_images(manifest, "tifa", shapes_prompts="v1", world="tiny", per_category=PER_CATEGORY)


def test_each_category_carries_its_interval_over_its_prompts(tmp_path):
    manifest = write_run(tmp_path, noise, per_category=3)
    tifa = score_images(manifest, "tifa", shapes_prompts="v1", world="tiny", per_category=3, progress=False)[
        "tifa"
    ]
    for name, category in tifa["by_category"].items():
        interval = category["interval"]
        assert interval["n_prompts"] == 3 and interval["n_samples"] == 6, name
        assert 0.0 <= interval["lo"] <= category["score"] <= interval["hi"] <= 1.0
        assert interval["value"] == pytest.approx(category["score"])


def test_each_element_type_carries_its_interval_over_the_prompts_that_ask_it(tmp_path):
    manifest = write_run(tmp_path, noise, per_category=3)
    tifa = score_images(manifest, "tifa", shapes_prompts="v1", world="tiny", per_category=3, progress=False)[
        "tifa"
    ]
    assert tifa["by_element_type"]
    for name, entry in tifa["by_element_type"].items():
        samples = entry["samples"]
        # the accuracy over answers weighs prompts by their question counts; the interval is over prompts
        assert len(samples["prompt_id"]) == len(samples["seed"]) == len(samples["value"]) > 0
        interval = entry["interval"]
        assert interval["n_samples"] == len(samples["value"]), name
        assert interval["n_prompts"] == len(set(samples["prompt_id"]))
        assert 0.0 <= interval["lo"] <= interval["value"] <= interval["hi"] <= 1.0
        assert interval["value"] == pytest.approx(np.mean(samples["value"]))

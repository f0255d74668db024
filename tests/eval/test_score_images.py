"""`score_images` and `t2iscale eval score` end to end on a tiny manifest (real-data path, tiny local models)."""

import json

import numpy as np
import pytest
import torch
from test_clip_score import save_tiny_clip
from test_fid_local import MeanColor, PlainFeatures, save_scripted
from test_vqa_blip import save_tiny_blip

from t2iscale.cli import main
from t2iscale.errors import UserError
from t2iscale.eval.manifest import ManifestEntry, save_image, write_manifest
from t2iscale.eval.score import parse_metrics, score_images

QUESTIONS = [
    {
        "id": "p1",
        "caption": "a red circle",
        "question": "is there a red circle?",
        "choices": ["yes", "no"],
        "answer": "yes",
        "element_type": "object",
        "element": "circle",
    },
    {
        "id": "p1",
        "caption": "a red circle",
        "question": "what color is the circle?",
        "choices": ["red", "blue", "green"],
        "answer": "red",
        "element_type": "color",
        "element": "red",
    },
    {
        "id": "p2",
        "caption": "two blue squares",
        "question": "how many squares?",
        "choices": ["one", "two"],
        "answer": "two",
        "element_type": "counting",
        "element": "two",
    },
]


class MeanColorVQA:
    """A fake backend whose answers depend on the image: "right" on bright images, the first choice otherwise."""

    def answer_all(self, image, questions):
        bright = image.mean() > 127
        return [q["answer"] if bright else q["choices"][0] for q in questions]


@pytest.fixture
def run_folder(tmp_path):
    """A manifest of 2 prompts x 2 seeds (bright images), a TIFA file, and 4 dark reference images."""
    rng = np.random.default_rng(0)
    entries = []
    for prompt_id in ("p1", "p2"):
        for seed in (0, 1):
            path = f"images/{prompt_id}_s{seed}.png"
            save_image(tmp_path / path, rng.integers(150, 256, (32, 32, 3), dtype=np.uint8))
            entries.append(ManifestEntry(prompt_id, seed, path))
    write_manifest(tmp_path / "manifest.jsonl", entries)
    (tmp_path / "questions.json").write_text(json.dumps(QUESTIONS))
    for index in range(4):
        save_image(tmp_path / "reference" / f"{index}.png", rng.integers(0, 100, (32, 32, 3), dtype=np.uint8))
    return tmp_path


def test_tifa_with_any_backend_writes_the_result_file(run_folder):
    results = score_images(
        run_folder / "manifest.jsonl",
        "tifa",
        questions=run_folder / "questions.json",
        vqa_backend=MeanColorVQA(),
        progress=False,
    )
    written = json.loads((run_folder / "eval" / "tifa.json").read_text())
    assert written == results["tifa"]
    assert written["score"] == 1.0 and written["n_images"] == 4 and written["n_prompts"] == 2
    assert written["chance_level"] == pytest.approx(np.mean([np.mean([1 / 2, 1 / 3]), 1 / 2]))
    assert set(written["per_prompt"]) == {"p1", "p2"} and written["vqa_backend"] == "MeanColorVQA"
    assert set(written["by_element_type"]) == {"object", "color", "counting"}


def test_missing_prompts_need_allow_partial(run_folder):
    extra = QUESTIONS + [dict(QUESTIONS[2], id="p3", caption="a green star")]
    (run_folder / "questions.json").write_text(json.dumps(extra))
    kwargs = dict(questions=run_folder / "questions.json", vqa_backend=MeanColorVQA(), progress=False)
    with pytest.raises(UserError, match="1 prompt\\(s\\) of .*questions.json have no image.*'p3'"):
        score_images(run_folder / "manifest.jsonl", "tifa", **kwargs)
    result = score_images(run_folder / "manifest.jsonl", "tifa", allow_partial=True, **kwargs)["tifa"]
    assert result["n_prompts"] == 2


def test_missing_requirements_fail_before_any_work(run_folder):
    manifest = run_folder / "manifest.jsonl"
    with pytest.raises(UserError, match="unknown metric 'is'"):
        parse_metrics("tifa,is")
    with pytest.raises(UserError, match="TIFA needs questions"):
        score_images(manifest, "tifa", vqa_backend=MeanColorVQA())
    with pytest.raises(UserError, match="TIFA needs a VQA model"):
        score_images(manifest, "tifa", questions=run_folder / "questions.json")
    with pytest.raises(UserError, match="--clip-model"):
        score_images(manifest, "clip")
    with pytest.raises(UserError, match="--inception"):
        score_images(manifest, "fid")
    with pytest.raises(UserError, match="fid needs reference images"):
        score_images(manifest, "fid", inception=run_folder / "x.pt")
    with pytest.raises(UserError, match="oracle FID needs a shapes world"):
        score_images(manifest, "oracle_fid")
    with pytest.raises(UserError, match="'p1' \\(seed 0\\) has no caption"):
        score_images(manifest, "clip", clip_model=run_folder / "nowhere")
    (run_folder / "questions.json").write_text(json.dumps(QUESTIONS[:2]))
    with pytest.raises(UserError, match="'p2' has no questions in"):
        score_images(manifest, "tifa", questions=run_folder / "questions.json", vqa_backend=MeanColorVQA())
    assert not (run_folder / "eval").exists()


def test_cli_end_to_end_with_local_blip_clip_and_inception(run_folder, capsys):
    save_tiny_blip(run_folder / "blip")
    save_tiny_clip(run_folder / "clip")
    torch.manual_seed(0)
    # 3-d features: FID needs at least as many images per set as feature dimensions, and this run has 4.
    save_scripted(MeanColor(), run_folder / "features.pt")
    out = run_folder / "scores"
    code = main(
        [
            "eval",
            "score",
            "--manifest",
            str(run_folder / "manifest.jsonl"),
            "--questions",
            str(run_folder / "questions.json"),
            "--metrics",
            "tifa,clip,fid",
            "--vqa-model",
            str(run_folder / "blip"),
            "--clip-model",
            str(run_folder / "clip"),
            "--inception",
            str(run_folder / "features.pt"),
            "--reference-images",
            str(run_folder / "reference"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "TIFA " in printed and "CLIP score " in printed and "FID " in printed
    assert "(4 generated vs 4 reference images)" in printed  # every FID shown with its N
    tifa = json.loads((out / "eval" / "tifa.json").read_text())
    assert 0 <= tifa["score"] <= 1 and tifa["n_images"] == 4 and "BlipVQA" in tifa["vqa_backend"]
    clip = json.loads((out / "eval" / "clip.json").read_text())
    assert clip["n_images"] == 4 and clip["clip_score"] >= 0
    fid = json.loads((out / "eval" / "fid.json").read_text())
    assert fid["n_reference"] == 4 and fid["n_generated"] == 4 and "4 images under" in fid["reference"]
    assert fid["fid"] > 0.01  # bright generated vs dark reference images
    assert fid["n_features"] == 3 and fid["recommended_images"] == 15 and "15 per set" in fid["warning"]


def test_fid_on_fewer_images_than_feature_dimensions_is_refused(run_folder):
    # Issue 14, item 9: 4 vs 4 images against 6-d features (2,048-d for Inception) are too few for FID.
    save_scripted(PlainFeatures(), run_folder / "features.pt")
    with pytest.raises(
        UserError, match=r"FID needs at least 6 reference and 6 generated images.*got 4 and 4"
    ):
        score_images(
            run_folder / "manifest.jsonl",
            "fid",
            inception=run_folder / "features.pt",
            reference_images=run_folder / "reference",
            progress=False,
        )
    assert not (run_folder / "eval").exists()


def test_cli_reports_user_errors_on_one_line(run_folder, capsys):
    (run_folder / "manifest.jsonl").write_text('{"prompt_id": "p1", "seed": 0}\n')
    code = main(["eval", "score", "--manifest", str(run_folder / "manifest.jsonl"), "--questions", "q.json"])
    assert code == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "manifest.jsonl:1: missing key 'path'" in error

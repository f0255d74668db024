"""What a run needs is refused when its config is validated, one line naming the key and the file (issue 15)."""

import pytest

from t2iscale.data.prepared_meta import META_FILE, PreparedMeta, PreparedShard
from t2iscale.errors import UserError
from t2iscale.eval.preflight import evaluation_problems
from t2iscale.train.config import validate_config


def write_prepared(folder, count=24, with_synthetic=0, resolution=32, dim=32, length=77):
    folder.mkdir(parents=True, exist_ok=True)
    meta = PreparedMeta(
        count=count,
        shards=[PreparedShard(file="shard-000000.safetensors", count=count, with_synthetic=with_synthetic)],
        resolution=resolution,
        latent_shape=(4, resolution // 8, resolution // 8),
        storage_dtype="float16",
        vae={"path": "vae"},
        text_encoder={"dim": dim, "max_length": length},
        subset_seed=0,
        size=None,
        source_shards=["raw.tar"],
        counters={"good": count, "bad": {}, "bad_by_shard": {}},
        fingerprint={},
    )
    (folder / META_FILE).write_text(meta.model_dump_json())
    return folder


def prepared_config(path, data=None, evaluation=None):
    return {
        "run_dir": "run",
        "model": {"backbone": "sdxl-c8-td1_1"},
        "data": {"kind": "prepared", "path": str(path), **(data or {})},
        "budget": {"total_steps": 2},
        "eval": evaluation or {},
    }


def test_the_prepared_folder_refuses_size_policy_and_setting_naming_each_key_and_the_file(tmp_path):
    folder = write_prepared(tmp_path / "prepared")
    raw = prepared_config(
        folder,
        {"size": 100, "caption_policy": "mix", "expect_resolution": 256, "expect_text_dim": 1024},
    )
    with pytest.raises(UserError) as caught:
        validate_config(raw, "run.toml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("invalid config run.toml:")
    assert f"data.size: 100 is larger than the 24 samples prepared in {folder / META_FILE}" in message
    assert "data.caption_policy: caption policy 'mix' needs synthetic captions" in message
    assert "set data.caption_policy=alt" in message
    assert (
        "data.expect_resolution: the recipe expects 256 px images" in message
        and "holds 32 px images" in message
    )
    assert "data.expect_text_dim: the recipe expects 1024-d text embeddings" in message
    # the same data is fine for what it can serve
    validate_config(prepared_config(folder, {"size": 24, "caption_policy": "alt", "expect_resolution": 32}))


def test_a_policy_is_refused_only_beyond_the_bad_fraction(tmp_path):
    folder = write_prepared(tmp_path / "prepared", count=100, with_synthetic=98)
    validate_config(prepared_config(folder, {"caption_policy": "syn5", "max_bad_fraction": 0.05}))
    with pytest.raises(UserError, match="2 of 100 have none"):
        validate_config(prepared_config(folder, {"caption_policy": "syn5", "max_bad_fraction": 0.01}))


def test_metrics_without_what_they_need_are_refused_before_training(tmp_path):
    folder = write_prepared(tmp_path / "prepared")
    evaluation = {"every_steps": 2, "prompts": "questions.json", "metrics": ["tifa", "clip", "fid"]}
    with pytest.raises(UserError) as caught:
        validate_config(prepared_config(folder, {"caption_policy": "alt"}, evaluation))
    message = str(caught.value)
    for key in ("eval.inception", "eval.fid_reference", "eval.vqa_model", "eval.clip_model"):
        assert key in message


def test_the_preflight_names_missing_files_and_an_unprepared_folder(tmp_path):
    evaluation = {
        "every_steps": 2,
        "prompts": str(tmp_path / "questions.json"),
        "metrics": ["tifa", "fid"],
        "vqa_model": str(tmp_path / "blip"),
        "inception": str(tmp_path / "inception.pt"),
        "fid_reference": str(tmp_path / "refs"),
    }
    config = validate_config(
        prepared_config(tmp_path / "not-prepared", {"caption_policy": "alt"}, evaluation)
    )
    problems = evaluation_problems(config)
    assert problems[0].startswith("data.path:") and "t2iscale data prepare" in problems[0]
    assert any(problem.startswith("eval.prompts:") for problem in problems)

"""`t2iscale data shapes`: webdataset shards in the real-data format, read back with webdataset."""

import json
import re

import numpy as np
import pytest
import webdataset as wds

from t2iscale.cli import main
from t2iscale.data.shapes import ShapesDataset
from t2iscale.data.shapes.shards import write_shards
from t2iscale.errors import UserError


def test_shards_read_back_with_webdataset(tmp_path):
    dataset = ShapesDataset("default", seed=4, size=25, policy="syn5", resolution=32)
    summary = write_shards(dataset, tmp_path, shard_size=10, progress=False)
    assert summary["shards"] == ["shapes-000000.tar", "shapes-000001.tar", "shapes-000002.tar"]
    assert summary["noun_pairs_total"] == dataset.noun_pairs_total()
    assert json.loads((tmp_path / "dataset.json").read_text()) == summary

    urls = str(tmp_path / "shapes-{000000..000002}.tar")
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == 25
    for index, sample in enumerate(samples):
        record = dataset.record(index)
        assert sample["__key__"] == record["key"]
        assert np.array_equal(sample["png"], record["image"])  # PNG is lossless
        assert sample["txt"] == record["alt"]
        meta = sample["json"]
        assert (
            meta["synthetic_captions"] == record["synthetic_captions"]
            and len(meta["synthetic_captions"]) == 5
        )
        assert meta["alt"] == record["alt"] and meta["scene"] == record["scene"]
        assert meta["noun_pairs"] == dataset.noun_pairs(index)


def test_refuses_to_mix_with_existing_shards(tmp_path):
    dataset = ShapesDataset("tiny", size=3)
    write_shards(dataset, tmp_path, progress=False)
    with pytest.raises(UserError, match="already holds"):
        write_shards(dataset, tmp_path, progress=False)


def test_cli_writes_shards_and_eval_prompts(tmp_path, capsys):
    out = tmp_path / "shards"
    code = main(
        ["data", "shapes", "--out", str(out), "--n", "12", "--shard-size", "5", "--world", "tiny",
         "--policy", "alt", "--resolution", "16", "--eval-prompts", str(tmp_path / "eval"), "--per-category", "2"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "wrote 12 images in 3 shards" in printed
    assert json.loads((out / "dataset.json").read_text())["resolution"] == 16
    questions = json.loads((tmp_path / "eval" / "questions.json").read_text())
    prompts = json.loads((tmp_path / "eval" / "prompts.json").read_text())
    assert len(prompts) == 12 and {q["id"] for q in questions} == {p["id"] for p in prompts}


def test_cli_bench_prints_one_line(capsys):
    assert main(["data", "shapes", "--bench"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and re.search(r"32px [\d,]+ img/s", line)


def test_cli_user_errors_are_one_line(capsys, tmp_path):
    assert main(["data", "shapes", "--world", "nope", "--out", str(tmp_path)]) == 1
    assert "unknown shapes world 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a usage error: exit 2 with the command's usage
        main(["data", "shapes"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("usage: t2iscale data shapes") and "--out is required" in err

"""`t2iscale data prepare` caption sources, workers and the manifest's caption counts (issue 15)."""

import json

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from safetensors.torch import load_file

from t2iscale.cli import main
from t2iscale.data.prepare import PrepareConfig, prepare
from t2iscale.data.prepared_meta import caption_policy_problem, read_prepared_meta
from t2iscale.data.vae import save_tiny_random_vae
from t2iscale.data.webdataset_reader import CaptionSources
from t2iscale.errors import UserError
from t2iscale.text.tiny import save_tiny_clip_text_encoder

RES = 16


def coco_sample(index: int) -> dict:
    pixels = np.random.default_rng(index).integers(0, 255, (RES, RES, 3), dtype=np.uint8)
    return {
        "__key__": f"{index:06d}",
        "jpg": Image.fromarray(pixels),
        "json": {"image_id": index, "captions": [f"a photo number {index}", "another caption"]},
    }


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    (root / "raw").mkdir()
    with wds.ShardWriter(str(root / "raw" / "%06d.tar"), maxcount=6, verbose=0) as sink:
        for index in range(12):
            sink.write(coco_sample(index))
    return {
        "vae": save_tiny_random_vae(root / "vae"),
        "text_encoder": save_tiny_clip_text_encoder(root / "clip"),
        "shards": str(root / "raw" / "{000000..000001}.tar"),
    }


def config(parts, out, **overrides) -> PrepareConfig:
    settings = dict(parts, out=out, resolution=RES, batch_size=4, shard_size=5, progress=False) | overrides
    return PrepareConfig(**settings)


def test_json_only_captions_are_missing_by_default_and_the_error_names_the_flag(parts, tmp_path, capsys):
    argv = ["data", "prepare", "--shards", parts["shards"], "--vae", str(parts["vae"]), "--text-encoder"]
    argv += [
        str(parts["text_encoder"]),
        "--out",
        str(tmp_path / "out"),
        "--resolution",
        str(RES),
        "--no-progress",
    ]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "missing_caption=12" in error and "--caption json:FIELD" in error and "json:captions.0" in error


def test_a_json_field_path_gives_the_caption_and_workers_give_the_same_shards(parts, tmp_path):
    one = prepare(config(parts, tmp_path / "one", captions=("json:captions.0",), synthetic_captions="none"))
    two = prepare(
        config(parts, tmp_path / "two", captions=("json:captions.0",), synthetic_captions="none", workers=2)
    )
    assert one.count == two.count == 12 and [s.count for s in one.shards] == [5, 5, 2]
    assert one.captions == {"caption": ["json:captions.0"], "synthetic": None} and one.with_synthetic == 0
    for first, second in zip(one.shards, two.shards):
        a, b = load_file(str(tmp_path / "one" / first.file)), load_file(str(tmp_path / "two" / second.file))
        assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
    # the caption sources are part of the settings: the same folder with other sources is refused
    with pytest.raises(UserError, match="other settings"):
        prepare(config(parts, tmp_path / "one", captions=("json:captions.1",), synthetic_captions="none"))
    # a policy needing synthetic captions cannot be served, and the problem names the fix
    problem = caption_policy_problem(read_prepared_meta(tmp_path / "one"), "mix", 0.01)
    assert "none has" in problem and "data.caption_policy=alt" in problem


def test_caption_sources_read_text_members_json_paths_and_fall_back_in_order():
    raw = {"txt": b"", "json": json.dumps({"caption": "from json", "syn": ["s1", " ", "s2"]}).encode()}
    sources = CaptionSources(("txt", "json:caption"), "json:syn")
    assert sources.read(raw) == ("from json", ["s1", "s2"])
    assert CaptionSources(("json:missing.0",), None).read(raw) == ("", [])
    with pytest.raises(ValueError, match="not a list of strings"):
        CaptionSources(("txt",), "json:caption.x").read({"json": b'{"caption": {"x": 3}}'})
    for bad in ("json:", ":caption", "json:a..b"):
        with pytest.raises(UserError, match="--caption"):
            CaptionSources((bad,))
    with pytest.raises(UserError, match="--synthetic-captions"):
        CaptionSources(("txt",), "json")

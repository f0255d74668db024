"""The image manifest that links generation and scoring: round trip and validation."""

import json

import numpy as np
import pytest

from t2iscale.errors import UserError
from t2iscale.eval.manifest import ManifestEntry, load_image, read_manifest, save_image, write_manifest


def test_round_trip_with_relative_paths(tmp_path):
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    save_image(tmp_path / "images" / "a.png", image)
    save_image(tmp_path / "images" / "b.png", image[::-1])
    entries = [
        ManifestEntry("p1", 0, "images/a.png", caption="a red circle"),
        ManifestEntry("p1", 1, "images/b.png", meta={"step": 10}),
    ]
    path = write_manifest(tmp_path / "manifest.jsonl", entries)
    assert read_manifest(path) == entries
    assert "caption" not in path.read_text().splitlines()[1]
    np.testing.assert_array_equal(load_image(tmp_path / entries[0].path), image)


def test_images_may_live_in_another_folder(tmp_path):
    save_image(tmp_path / "imgs" / "a.png", np.zeros((2, 2, 3), np.uint8))
    path = write_manifest(tmp_path / "m" / "manifest.jsonl", [ManifestEntry("p1", 0, "a.png")])
    with pytest.raises(UserError, match="a.png' does not exist"):
        read_manifest(path)
    assert read_manifest(path, image_dir=tmp_path / "imgs")[0].path == "a.png"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"prompt_id": "p", "path": "a.png"}', "missing key 'seed'"),
        ('{"prompt_id": "p", "seed": "0", "path": "a.png"}', "'seed' must be a int"),
        ('{"prompt_id": "p", "seed": true, "path": "a.png"}', "'seed' must be a int"),
        ('{"prompt_id": "p", "seed": 0, "path": "a.png", "colour": 1}', "unknown key 'colour'"),
        ('{"prompt_id": "p", "seed": 0, "path": "a.png", "caption": 3}', "'caption' must be a str"),
        ('{"prompt_id": "", "seed": 0, "path": "a.png"}', "must not be empty"),
        ('{"prompt_id": "p", "seed": 0, "path": "/abs/a.png"}', "must be relative"),
        ('{"prompt_id": "p1", "seed": 0, "path": "a.png"}', "seed 0 already appears on line 1"),
    ],
)
def test_bad_lines_name_file_and_line_number(tmp_path, line, message):
    save_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8))
    path = tmp_path / "manifest.jsonl"
    first = json.dumps({"prompt_id": "p1", "seed": 0, "path": "a.png"})
    path.write_text(first + "\n\n" + line + "\n")
    with pytest.raises(UserError, match=message) as error:
        read_manifest(path)
    assert f"{path}:3" in str(error.value)


def test_missing_and_empty_manifests(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_manifest(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="no entries"):
        read_manifest(tmp_path / "empty.jsonl")
    (tmp_path / "broken.png").write_text("not an image")
    with pytest.raises(UserError, match="cannot read image"):
        load_image(tmp_path / "broken.png")

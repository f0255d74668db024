"""A frozen encoder rebuilt from its description (prepared.json's `text_encoder`) uses every option it was run
with: layer, max_length, final_norm and dtype (issue 14, item 1)."""

import pytest
import torch

from t2iscale.errors import UserError
from t2iscale.text import PretrainedTextEncoder, load_described_text_encoder, load_text_encoder
from t2iscale.text.tiny import save_tiny_clip_text_encoder, save_tiny_t5_text_encoder

CAPTIONS = ["", "a red cat left of the dog"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {"clip": save_tiny_clip_text_encoder(root / "clip"), "t5": save_tiny_t5_text_encoder(root / "t5")}


@pytest.mark.parametrize(
    "family, options",
    [
        ("clip", {"layer": "last", "max_length": 8}),
        ("clip", {"layer": "penultimate", "final_norm": False, "max_length": 12}),
        ("clip", {"layer": "last", "dtype": "bfloat16"}),
        ("t5", {"layer": "penultimate", "final_norm": False, "max_length": 10}),
    ],
)
def test_every_option_travels_with_the_description(folders, family, options):
    used = load_text_encoder(folders[family], **options)
    rebuilt = load_described_text_encoder(used.describe())
    assert rebuilt.options() == used.options()
    assert tuple(rebuilt.options()) == PretrainedTextEncoder.OPTIONS
    expected_ctx, expected_mask = used.encode(CAPTIONS)
    ctx, mask = rebuilt.encode(CAPTIONS)
    assert ctx.dtype == expected_ctx.dtype and torch.equal(mask, expected_mask)
    torch.testing.assert_close(ctx, expected_ctx, atol=0, rtol=0)


def test_a_description_without_an_option_is_refused_not_defaulted(folders):
    description = load_text_encoder(folders["clip"], layer="last").describe()
    del description["layer"]
    with pytest.raises(UserError, match="lacks layer"):
        load_described_text_encoder(description)


def test_another_model_in_the_given_folder_is_refused(folders):
    description = load_text_encoder(folders["clip"]).describe()
    with pytest.raises(UserError, match="clip_text_model"):
        load_described_text_encoder(description, path=folders["t5"])

"""Sampling and evaluation condition on the text encoder training saw (issue 14, item 1).

Prepared data stores embeddings of a frozen encoder run with some options (layer, max_length, final_norm, dtype);
the encoder rebuilt for sampling must use all of them: its empty-prompt embedding equals the stored one up to the
float16 storage (~1e-3), not up to a layer's difference (2.67 with the last layer read as the penultimate).
"""

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from safetensors.torch import load_file

from t2iscale.cli import main
from t2iscale.data.prepared_meta import read_prepared_meta
from t2iscale.data.vae import save_tiny_random_vae
from t2iscale.errors import UserError
from t2iscale.eval.text_to_image import text_encoder_for_sampling
from t2iscale.text.tiny import save_tiny_clip_text_encoder
from t2iscale.train.config import validate_config

RES = 16
MAX_LENGTH = 8  # the tiny CLIP's own default is its 16 positions


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    (root / "raw").mkdir()
    with wds.ShardWriter(str(root / "raw" / "%06d.tar"), maxcount=10, verbose=0) as writer:
        for index in range(4):
            pixels = np.random.default_rng(index).integers(0, 255, (RES, RES, 3), dtype=np.uint8)
            writer.write(
                {"__key__": f"{index:06d}", "png": Image.fromarray(pixels), "txt": f"a red cat {index}"}
            )
    return {
        "shards": str(root / "raw" / "000000.tar"),
        "vae": save_tiny_random_vae(root / "vae"),
        "clip": save_tiny_clip_text_encoder(root / "clip"),
    }


@pytest.fixture(scope="module")
def prepared(parts, tmp_path_factory):
    """Data prepared with the last layer and 8 tokens: neither is what the encoder folder alone implies."""
    out = tmp_path_factory.mktemp("prepared") / "data"
    code = main(
        ["data", "prepare", "--shards", parts["shards"], "--vae", str(parts["vae"]), "--text-encoder",
         str(parts["clip"]), "--out", str(out), "--resolution", str(RES), "--text-layer", "last",
         "--text-max-length", str(MAX_LENGTH), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    return out


def run_config(prepared, tmp_path, **text):
    return validate_config(
        {
            "run_dir": str(tmp_path / "run"),
            "data": {"kind": "prepared", "path": str(prepared), "caption_policy": "alt"},
            "text": text,
            "budget": {"total_steps": 1},
        }
    )


def stored_empty_caption(prepared):
    stored = load_file(str(prepared / read_prepared_meta(prepared).empty_caption_file))
    return stored["text_ctx"].float(), stored["text_mask"]  # (L, D), (L,)


@pytest.mark.parametrize("text_path", [False, True], ids=["prepared-from", "text.path"])
def test_the_sampling_encoder_gives_the_stored_empty_prompt_embedding(parts, prepared, tmp_path, text_path):
    text = {"path": str(parts["clip"])} if text_path else {}
    encoder = text_encoder_for_sampling(run_config(prepared, tmp_path, **text), torch.device("cpu"))
    assert (encoder.layer, encoder.max_length) == ("last", MAX_LENGTH)  # was ("penultimate", 16)
    assert encoder.describe() == read_prepared_meta(prepared).text_encoder
    ctx, mask = encoder.encode([""])
    stored_ctx, stored_mask = stored_empty_caption(prepared)
    assert ctx.shape == (1, MAX_LENGTH, 32) and torch.equal(mask[0], stored_mask)
    assert (ctx[0] - stored_ctx).abs().max().item() < 2e-3  # float16 storage; was 2.67 (or another shape)


def test_an_encoder_that_does_not_reproduce_the_stored_embeddings_is_refused(parts, prepared, tmp_path):
    other = save_tiny_clip_text_encoder(tmp_path / "other-clip", seed=1)  # same architecture, other weights
    with pytest.raises(UserError, match="does not reproduce the empty-caption embedding"):
        text_encoder_for_sampling(run_config(prepared, tmp_path, path=str(other)), torch.device("cpu"))

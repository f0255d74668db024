"""HPSv2 through its real loading code: a tiny random CLIP (transformers' class) written as an OpenCLIP checkpoint
in the released HPSv2 format ({"state_dict": ...}), saved, and loaded back with a tiny OpenCLIP config file.

The scores are checked against OpenCLIP's forward written out here from the checkpoint's own tensors
(`nn.MultiheadAttention` with the fused in-projection, class-token pooling, ln_pre/ln_post, x @ proj, a causal
text transformer pooled at the highest token id), so the key mapping is tested for meaning, not only for names.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from t2iscale.errors import UserError
from t2iscale.eval.hps import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    HpsScorer,
    clip_config,
    hps_pixels,
    open_clip_to_transformers,
    transformers_to_open_clip,
)
from t2iscale.eval.manifest import ManifestEntry, save_image, write_manifest
from t2iscale.eval.score import score_images

ARCH = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 54, "width": 64, "heads": 2, "layers": 2},
}


def save_tiny_clip_tokenizer(directory):
    """One token per letter, and CLIP's start/end tokens as the two highest ids (as in the real BPE)."""
    from transformers import CLIPTokenizer

    vocab = {}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    assert len(vocab) == ARCH["text_cfg"]["vocab_size"]
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(directory)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import CLIPModel

    folder = tmp_path_factory.mktemp("hpsv2")
    save_tiny_clip_tokenizer(folder / "tokenizer")
    (folder / "arch.json").write_text(json.dumps(ARCH))
    torch.manual_seed(0)
    model = CLIPModel(clip_config(ARCH)).eval()
    for parameter in model.parameters():
        parameter.data.normal_(0, 0.2)
    state = transformers_to_open_clip(model.state_dict())
    torch.save({"epoch": 1, "state_dict": state}, folder / "HPS_v2_compressed.pt")
    return folder, model, state


def open_clip_reference(state, pixels, ids):
    """(B,) 100 · cos(image, text) computed the way OpenCLIP's CLIP does, from the OpenCLIP-named tensors."""

    def layer_norm(x, name):
        return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-5)

    def blocks(x, prefix, heads, mask):
        width = x.shape[-1]
        index = 0
        while f"{prefix}.{index}.ln_1.weight" in state:
            p = f"{prefix}.{index}"
            attention = nn.MultiheadAttention(width, heads, batch_first=True)
            attention.load_state_dict(
                {
                    "in_proj_weight": state[f"{p}.attn.in_proj_weight"],
                    "in_proj_bias": state[f"{p}.attn.in_proj_bias"],
                    "out_proj.weight": state[f"{p}.attn.out_proj.weight"],
                    "out_proj.bias": state[f"{p}.attn.out_proj.bias"],
                }
            )
            h = layer_norm(x, f"{p}.ln_1")
            x = x + attention(h, h, h, attn_mask=mask, need_weights=False)[0]
            h = layer_norm(x, f"{p}.ln_2")
            h = F.linear(h, state[f"{p}.mlp.c_fc.weight"], state[f"{p}.mlp.c_fc.bias"])
            x = x + F.linear(F.gelu(h), state[f"{p}.mlp.c_proj.weight"], state[f"{p}.mlp.c_proj.bias"])
            index += 1
        return x

    vision, text = ARCH["vision_cfg"], ARCH["text_cfg"]
    x = F.conv2d(pixels, state["visual.conv1.weight"], stride=vision["patch_size"])  # (B, W, g, g)
    x = x.flatten(2).transpose(1, 2)  # (B, g·g, W)
    x = torch.cat([state["visual.class_embedding"].expand(x.shape[0], 1, -1), x], dim=1)
    x = layer_norm(x + state["visual.positional_embedding"], "visual.ln_pre")
    x = blocks(x, "visual.transformer.resblocks", vision["width"] // vision["head_width"], None)
    image = layer_norm(x[:, 0], "visual.ln_post") @ state["visual.proj"]  # (B, D)

    length = ids.shape[1]
    causal = torch.full((length, length), float("-inf")).triu(1)
    t = state["token_embedding.weight"][ids] + state["positional_embedding"][:length]
    t = layer_norm(blocks(t, "transformer.resblocks", text["heads"], causal), "ln_final")
    caption = t[torch.arange(ids.shape[0]), ids.argmax(dim=-1)] @ state["text_projection"]  # (B, D)
    return 100 * F.cosine_similarity(image, caption, dim=-1)


def test_the_mapping_writes_open_clip_names_and_round_trips_exactly(tiny):
    _, model, state = tiny
    width, embed = ARCH["vision_cfg"]["width"], ARCH["embed_dim"]
    assert state["visual.transformer.resblocks.1.attn.in_proj_weight"].shape == (3 * width, width)
    assert state["visual.proj"].shape == (width, embed) and state["text_projection"].shape == (width, embed)
    for key in (
        "visual.conv1.weight",
        "visual.ln_pre.bias",
        "transformer.resblocks.0.mlp.c_fc.weight",
        "ln_final.weight",
    ):
        assert key in state
    mapped, unused = open_clip_to_transformers({**state, "attn_mask": torch.zeros(16, 16)})
    assert unused == ["attn_mask"]
    original = model.state_dict()
    assert mapped.keys() == original.keys()
    for key, value in original.items():
        assert torch.equal(mapped[key], value), key


def test_scores_match_open_clips_forward_on_the_checkpoint(tiny):
    folder, _, state = tiny
    scorer = HpsScorer(folder / "HPS_v2_compressed.pt", folder / "tokenizer", arch=folder / "arch.json")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    images.append(rng.integers(0, 256, (48, 24, 3), dtype=np.uint8))  # resized and padded
    captions = ["a red circle", "two blue squares", "a red circle on the left of a very long square"]
    result = scorer.score(images, captions, batch_size=2)

    ids = scorer.tokenizer(
        captions, padding="max_length", truncation=True, max_length=16, return_tensors="pt"
    )
    ids = ids["input_ids"]
    assert (ids.argmax(dim=-1) < 16).all() and ids[2, -1] == 53  # the long caption keeps its end token
    with torch.no_grad():
        pixels = torch.stack([hps_pixels(image, 32) for image in images])
        expected = open_clip_reference(state, pixels, ids).tolist()
    assert result["image_scores"] == pytest.approx(expected, abs=1e-4)
    assert result["hpsv2"] == pytest.approx(np.mean(expected), abs=1e-4)
    assert result["n_images"] == 3 and result["n_truncated_captions"] == 1 and result["max_tokens"] == 16
    assert result["arch"].endswith("arch.json") and result["unused_checkpoint_keys"] == []
    assert len(set(np.round(result["image_scores"], 4))) == 3


def test_image_transform_resizes_the_longer_side_and_pads_with_zeros():
    mean, std = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1), torch.tensor(OPENAI_CLIP_STD).view(3, 1)
    # 16 x 32 (H x W) at 32: no resampling, 8 zero rows above and below.
    pixels = hps_pixels(np.full((16, 32, 3), 255, dtype=np.uint8), 32)
    assert pixels.shape == (3, 32, 32)
    assert torch.allclose(pixels[:, :8].reshape(3, -1), (-mean / std).expand(3, 8 * 32))
    assert torch.allclose(pixels[:, 8:24].reshape(3, -1), ((1 - mean) / std).expand(3, 16 * 32))
    assert torch.allclose(pixels[:, 24:].reshape(3, -1), (-mean / std).expand(3, 8 * 32))
    # 64 x 32 -> 32 x 16, then 8 zero columns left and right; a flat image stays flat.
    pixels = hps_pixels(np.full((64, 32, 3), 255, dtype=np.uint8), 32)
    assert torch.allclose(pixels[:, :, 8:24].reshape(3, -1), ((1 - mean) / std).expand(3, 32 * 16), atol=1e-5)
    assert torch.allclose(pixels[:, :, :8].reshape(3, -1), (-mean / std).expand(3, 32 * 8))


def test_missing_or_mismatched_local_files_are_clear_errors(tiny, tmp_path):
    folder, _, _ = tiny
    checkpoint, tokenizer, arch = folder / "HPS_v2_compressed.pt", folder / "tokenizer", folder / "arch.json"
    with pytest.raises(UserError, match="--hpsv2-checkpoint .*absent.pt.* is not a file"):
        HpsScorer(tmp_path / "absent.pt", tokenizer, arch=arch)
    with pytest.raises(UserError, match="--hpsv2-tokenizer .* is not a folder"):
        HpsScorer(checkpoint, tmp_path / "none", arch=arch)
    with pytest.raises(UserError, match="--hpsv2-arch 'ViT-Z' is neither a built-in"):
        HpsScorer(checkpoint, tokenizer, arch="ViT-Z")
    # The built-in ViT-H-14 is checked against the tiny checkpoint's shapes without building its 1B weights.
    with pytest.raises(UserError, match="is not a checkpoint of the OpenCLIP 'ViT-H-14' \\(--hpsv2-arch\\)"):
        HpsScorer(checkpoint, tokenizer)
    wider = {**ARCH, "embed_dim": 8}
    with pytest.raises(
        UserError,
        match="does not fit the architecture 'custom'.*'visual_projection.weight' has shape \\(16, 64\\)",
    ):
        HpsScorer(checkpoint, tokenizer, arch=wider)
    (tmp_path / "timm.json").write_text(
        json.dumps({**ARCH, "vision_cfg": {**ARCH["vision_cfg"], "timm_model_name": "x"}})
    )
    with pytest.raises(UserError, match="vision_cfg key\\(s\\) this loader does not build: timm_model_name"):
        HpsScorer(checkpoint, tokenizer, arch=tmp_path / "timm.json")


def test_score_images_writes_hpsv2_with_its_interval(tiny, tmp_path):
    folder, _, _ = tiny
    rng = np.random.default_rng(2)
    entries = []
    for prompt_id, caption in (("p1", "a red circle"), ("p2", "two blue squares")):
        for seed in (0, 1):
            path = f"images/{prompt_id}_{seed}.png"
            save_image(tmp_path / path, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
            entries.append(ManifestEntry(prompt_id, seed, path, caption=caption))
    write_manifest(tmp_path / "manifest.jsonl", entries)
    with pytest.raises(UserError, match="HPSv2 needs its released checkpoint: --hpsv2-checkpoint FILE"):
        score_images(tmp_path / "manifest.jsonl", "hpsv2", hpsv2_tokenizer=folder / "tokenizer")
    assert not (tmp_path / "eval").exists()
    result = score_images(
        tmp_path / "manifest.jsonl",
        "hpsv2",
        hpsv2_checkpoint=folder / "HPS_v2_compressed.pt",
        hpsv2_tokenizer=folder / "tokenizer",
        hpsv2_arch=folder / "arch.json",
        progress=False,
    )["hpsv2"]
    assert result["n_images"] == 4 and result["samples"]["prompt_id"] == ["p1", "p1", "p2", "p2"]
    assert result["interval"]["lo"] <= result["hpsv2"] <= result["interval"]["hi"]
    assert json.loads((tmp_path / "eval" / "hpsv2.json").read_text()) == result


def test_along_training_logs_hpsv2_per_prompt_like_every_metric(tiny, tmp_path):
    from test_along_training import TINY

    from t2iscale.study.single_run import run_training
    from t2iscale.train.config import validate_config
    from t2iscale.train.jsonl import read_jsonl

    folder, _, _ = tiny
    evaluation = {
        **TINY["eval"],
        "metrics": ["hpsv2"],
        "hpsv2_checkpoint": str(folder / "HPS_v2_compressed.pt"),
        "hpsv2_tokenizer": str(folder / "tokenizer"),
        "hpsv2_arch": str(folder / "arch.json"),
    }
    raw = {**TINY, "run_dir": str(tmp_path / "run"), "eval": evaluation}
    raw["budget"] = {**TINY["budget"], "total_steps": 2}
    run_training(validate_config(raw), progress=False)
    [record] = read_jsonl(tmp_path / "run" / "eval" / "eval.jsonl")
    assert record["metric"] == "hpsv2" and record["step"] == 2
    assert record["n_images"] == len(record["samples"]["value"]) == 6  # 6 categories x 1 prompt x 1 seed
    assert -100 <= record["value"] <= 100
    assert record["value"] == pytest.approx(np.mean(record["samples"]["value"]))

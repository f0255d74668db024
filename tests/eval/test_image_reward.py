"""ImageReward through its real loading code: a tiny random BLIP (transformers' classes) written in the released
ImageReward.pt naming, saved, and loaded back from a local file and tokenizer folder."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from t2iscale.cli import main
from t2iscale.errors import UserError
from t2iscale.eval.image_reward import (
    REWARD_MEAN,
    REWARD_STD,
    ImageRewardScorer,
    image_reward_pixels,
    released_to_transformers,
    transformers_to_released,
)
from t2iscale.eval.manifest import ManifestEntry, save_image, write_manifest
from t2iscale.eval.score import score_images

WORDS = ["a", "red", "blue", "circle", "square", "two", "on", "the", "left"]
WIDTH = 128  # two 64-wide heads, as BLIP's head width implies


def save_tiny_tokenizer(directory):
    from transformers import BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(directory / "vocab.txt"))
    tokenizer.save_pretrained(directory)
    return len(tokenizer)


def tiny_parts(vocab_size: int):
    """(vision, text, head) modules with ImageReward's structure at a tiny size, random weights."""
    from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

    torch.manual_seed(0)
    vision = BlipVisionModel(
        BlipVisionConfig(
            hidden_size=WIDTH,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=16,
            layer_norm_eps=1e-6,
        )
    )
    text = BlipTextModel(
        BlipTextConfig(
            vocab_size=vocab_size + 2,  # + BLIP's [DEC] and [ENC]
            hidden_size=WIDTH,
            encoder_hidden_size=WIDTH,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=40,
            bos_token_id=None,
            sep_token_id=None,
        ),
        add_pooling_layer=False,
    )
    # The released head: Linear, Dropout, Linear, Dropout, Linear, Dropout, Linear, Linear (indices 0 2 4 6 7).
    head = nn.Sequential(
        nn.Linear(WIDTH, 32),
        nn.Dropout(0.2),
        nn.Linear(32, 16),
        nn.Dropout(0.2),
        nn.Linear(16, 8),
        nn.Dropout(0.1),
        nn.Linear(8, 4),
        nn.Linear(4, 1),
    )
    for module in (
        vision,
        text,
    ):  # transformers' init leaves LayerNorms at 1/0 and small weights: perturb all
        for parameter in module.parameters():
            parameter.data.normal_(0, 0.2)
    return vision.eval(), text.eval(), head.eval()


def save_released(path, vision, text, head):
    state = transformers_to_released(vision.state_dict(), text.state_dict(), head.state_dict())
    # What the released file also holds: BLIP's projections (unused for the reward) and the text position buffer.
    state["blip.vision_proj.weight"] = torch.randn(8, WIDTH)
    state["blip.text_proj.weight"] = torch.randn(8, WIDTH)
    state["blip.text_encoder.embeddings.position_ids"] = torch.arange(40)[None]
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("image_reward")
    vocab_size = save_tiny_tokenizer(folder / "tokenizer")
    vision, text, head = tiny_parts(vocab_size)
    state = save_released(folder / "ImageReward.pt", vision, text, head)
    return folder, (vision, text, head), state


def test_the_mapping_writes_the_released_names_and_round_trips_exactly(tiny):
    _, (vision, text, head), state = tiny
    # The names of THUDM/ImageReward's ImageReward.pt (BLIP's ViT, med.BertModel, the MLP head).
    for key in (
        "blip.visual_encoder.cls_token",
        "blip.visual_encoder.pos_embed",
        "blip.visual_encoder.patch_embed.proj.weight",
        "blip.visual_encoder.blocks.1.norm1.weight",
        "blip.visual_encoder.blocks.1.attn.qkv.weight",
        "blip.visual_encoder.blocks.1.attn.proj.bias",
        "blip.visual_encoder.blocks.1.mlp.fc2.weight",
        "blip.visual_encoder.norm.bias",
        "blip.text_encoder.embeddings.word_embeddings.weight",
        "blip.text_encoder.encoder.layer.1.crossattention.self.key.weight",
        "mlp.layers.0.weight",
        "mlp.layers.7.bias",
    ):
        assert key in state, key
    assert not any(key.startswith("blip.visual_encoder.encoder") for key in state)
    parts, unused = released_to_transformers(state)
    assert sorted(unused) == ["blip.text_proj.weight", "blip.vision_proj.weight"]
    for name, module in (("vision", vision), ("text", text), ("head", head)):
        original = module.state_dict()
        assert parts[name].keys() == original.keys()
        for key, value in original.items():
            assert torch.equal(parts[name][key], value), key


def test_scores_are_the_standardized_head_of_the_cross_attended_cls_token(tiny):
    folder, (vision, text, head), _ = tiny
    scorer = ImageRewardScorer(folder / "ImageReward.pt", folder / "tokenizer")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    captions = ["a red circle", "two blue square on the left", "a red circle"]
    result = scorer.score(images, captions, batch_size=2)

    # The same computation with the in-memory modules the checkpoint was written from.
    tokens = scorer.tokenizer(
        captions, padding="max_length", truncation=True, max_length=35, return_tensors="pt"
    )
    assert (
        tokens["input_ids"].shape == (3, 35)
        and (tokens["input_ids"][:, 0] == scorer.tokenizer.cls_token_id).all()
    )
    with torch.no_grad():
        pixels = torch.stack([image_reward_pixels(image, 32) for image in images])
        embeds = vision(pixel_values=pixels).last_hidden_state  # (3, 5, WIDTH)
        hidden = text(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            encoder_hidden_states=embeds,
            encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long),
        ).last_hidden_state
        expected = ((head(hidden[:, 0])[:, 0] - REWARD_MEAN) / REWARD_STD).tolist()
    assert result["image_scores"] == pytest.approx(expected, abs=1e-5)
    assert result["image_reward"] == pytest.approx(np.mean(expected), abs=1e-5)
    assert result["n_images"] == 3 and result["max_tokens"] == 35 and result["n_truncated_captions"] == 0
    # The caption and the image both matter: the text encoder cross-attends to the image.
    assert abs(result["image_scores"][0] - result["image_scores"][1]) > 1e-4
    assert abs(result["image_scores"][0] - result["image_scores"][2]) > 1e-4
    assert sorted(result["unused_checkpoint_keys"]) == ["blip.text_proj.weight", "blip.vision_proj.weight"]


def test_image_transform_is_resize_shorter_side_then_center_crop():
    # A 64 x 32 (W x H) image: the shorter side already 32, so no resampling; the crop keeps columns 16..47.
    image = np.zeros((32, 64, 3), dtype=np.uint8)
    image[:, 16:48] = 255
    pixels = image_reward_pixels(image, 32)
    assert pixels.shape == (3, 32, 32)
    white = (1 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711]
    )
    assert torch.allclose(pixels, white.view(3, 1, 1).expand(3, 32, 32), atol=1e-6)
    assert image_reward_pixels(np.zeros((64, 64, 3), dtype=np.uint8), 32).shape == (3, 32, 32)


def test_missing_or_wrong_local_files_are_clear_errors(tiny, tmp_path):
    folder, _, _ = tiny
    with pytest.raises(UserError, match="--image-reward-checkpoint .*nowhere.pt.* is not a file"):
        ImageRewardScorer(tmp_path / "nowhere.pt", folder / "tokenizer")
    with pytest.raises(UserError, match="--image-reward-tokenizer .* is not a folder"):
        ImageRewardScorer(folder / "ImageReward.pt", tmp_path / "no_tokenizer")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read it as a PyTorch checkpoint"):
        ImageRewardScorer(tmp_path / "junk.pt", folder / "tokenizer")
    torch.save({"visual.conv1.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="is not an ImageReward checkpoint.*missing"):
        ImageRewardScorer(tmp_path / "other.pt", folder / "tokenizer")


def test_eval_score_cli_writes_image_reward_with_its_interval(tiny, tmp_path, capsys):
    folder, _, _ = tiny
    rng = np.random.default_rng(1)
    entries = []
    for prompt_id, caption in (("p1", "a red circle"), ("p2", "two blue square")):
        for seed in (0, 1):
            path = f"images/{prompt_id}_{seed}.png"
            save_image(tmp_path / path, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
            entries.append(ManifestEntry(prompt_id, seed, path, caption=caption))
    write_manifest(tmp_path / "manifest.jsonl", entries)
    with pytest.raises(UserError, match="--image-reward-tokenizer DIR"):
        score_images(
            tmp_path / "manifest.jsonl", "image_reward", image_reward_checkpoint=folder / "ImageReward.pt"
        )
    with pytest.raises(UserError, match="--image-reward-checkpoint .*absent.pt.* does not exist"):
        score_images(
            tmp_path / "manifest.jsonl", "image_reward", image_reward_checkpoint=tmp_path / "absent.pt"
        )
    assert not (tmp_path / "eval").exists()
    code = main(
        [
            "eval",
            "score",
            "--manifest",
            str(tmp_path / "manifest.jsonl"),
            "--metrics",
            "image_reward",
            "--image-reward-checkpoint",
            str(folder / "ImageReward.pt"),
            "--image-reward-tokenizer",
            str(folder / "tokenizer"),
        ]
    )
    assert code == 0
    assert "ImageReward " in capsys.readouterr().out
    result = json.loads((tmp_path / "eval" / "image_reward.json").read_text())
    assert result["n_images"] == 4 and len(result["samples"]["value"]) == 4
    assert result["interval"]["lo"] <= result["image_reward"] <= result["interval"]["hi"]


def test_a_training_config_with_the_preference_metrics_names_each_missing_key():
    from t2iscale.train.config import validate_config

    base = {"run_dir": "runs/x", "budget": {"total_steps": 1}, "data": {"size": 100}}
    evaluation = {"every_steps": 1, "metrics": ["image_reward", "hpsv2"]}
    with pytest.raises(
        UserError, match="eval.image_reward_checkpoint.*needs a local checkpoint file"
    ) as error:
        validate_config({**base, "eval": evaluation})
    for key in ("eval.image_reward_tokenizer", "eval.hpsv2_checkpoint", "eval.hpsv2_tokenizer"):
        assert key in str(error.value)
    given = {
        "image_reward_checkpoint": "ImageReward.pt",
        "image_reward_tokenizer": "bert",
        "hpsv2_checkpoint": "HPS_v2_compressed.pt",
        "hpsv2_tokenizer": "clip",
    }
    config = validate_config({**base, "eval": {**evaluation, **given}})
    assert config.eval.hpsv2_arch == "ViT-H-14"

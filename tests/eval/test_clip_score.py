"""CLIP score through torchmetrics, with a tiny random CLIP saved to disk and loaded from a local directory."""

import warnings

import numpy as np
import pytest
import torch

from t2iscale.errors import UserError
from t2iscale.eval.clip_score import ClipScorer

MAX_TOKENS = 16


def save_tiny_clip(directory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=[]
    )  # one token per letter: lengths are easy to reason about
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(
            small,
            vocab_size=len(vocab),
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(small, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(directory)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clip")
    save_tiny_clip(directory)
    return directory


def images(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 36, 3), dtype=np.uint8) for _ in range(count)]


def reference_clip_score(scorer, image, caption):
    """100 * cos(image embedding, text embedding) straight from the model, for comparison."""
    model = scorer.model.model
    processor = scorer.processor.processor
    with torch.no_grad():
        pixels = processor(images=[torch.from_numpy(image).permute(2, 0, 1)], return_tensors="pt")[
            "pixel_values"
        ]
        text = processor(text=[caption], return_tensors="pt")
        assert text["input_ids"].shape[1] <= MAX_TOKENS
        image_embedding = model.get_image_features(pixel_values=pixels).pooler_output
        text_embedding = model.get_text_features(**text).pooler_output
    return 100 * torch.nn.functional.cosine_similarity(image_embedding, text_embedding).item()


def test_clip_score_matches_the_models_cosine_similarity(clip_dir):
    scorer = ClipScorer(clip_dir)
    pictures = images(3)
    captions = ["a cat", "short", "red"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation warning for short captions
        result = scorer.score(pictures, captions, batch_size=2)
    expected = np.mean([reference_clip_score(scorer, i, c) for i, c in zip(pictures, captions)])
    assert expected > 1  # torchmetrics clamps the mean at 0; keep the comparison meaningful
    assert result["clip_score"] == pytest.approx(expected, abs=1e-3)
    assert (
        result["n_images"] == 3 and result["n_truncated_captions"] == 0 and result["max_tokens"] == MAX_TOKENS
    )


def test_long_captions_are_truncated_with_a_warning(clip_dir):
    scorer = ClipScorer(clip_dir)
    long_caption = "a cat sitting on a very long mat " * 3
    assert len(scorer.tokenizer(long_caption)["input_ids"]) > MAX_TOKENS
    pictures = images(2)
    with pytest.warns(
        UserWarning, match=f"1 caption\\(s\\) exceed the CLIP text limit of {MAX_TOKENS} tokens"
    ):
        result = scorer.score(pictures, ["short", long_caption])
    assert result["n_truncated_captions"] == 1
    # One token per letter: <|startoftext|> + 14 letters + <|endoftext|> = MAX_TOKENS. The long caption must
    # count as its first 14 letters with the end-of-text token kept (CLIP pools the text there).
    truncated = "a cat sitting on a"
    expected = np.mean(
        [
            reference_clip_score(scorer, pictures[0], "short"),
            reference_clip_score(scorer, pictures[1], truncated),
        ]
    )
    assert expected > 1
    assert result["clip_score"] == pytest.approx(expected, abs=1e-3)


def test_bad_model_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        ClipScorer(tmp_path)


def test_float_images_in_0_1_score_as_the_same_uint8_images(clip_dir):
    # Issue 14, item 8: floats in [0, 1] went to the processor as they were and scored 0.0 (0.402 as uint8).
    scorer = ClipScorer(clip_dir)
    pictures, captions = images(3), ["a cat", "short", "red"]
    as_uint8 = scorer.score(pictures, captions)
    as_float = scorer.score([picture / 255.0 for picture in pictures], captions)
    as_tensors = scorer.score([torch.from_numpy(p).float() / 255 for p in pictures], captions)
    assert as_uint8["clip_score"] > 1
    assert as_float["clip_score"] == pytest.approx(as_uint8["clip_score"], abs=1e-6)
    assert as_float["image_scores"] == pytest.approx(as_uint8["image_scores"], abs=1e-6)
    assert as_tensors["clip_score"] == pytest.approx(as_uint8["clip_score"], abs=1e-6)
    with pytest.raises(UserError, match=r"CLIP score image 1 has float values in \[-1, .*\(x \+ 1\) / 2"):
        scorer.score([pictures[0] / 255.0, pictures[1] / 127.5 - 1, pictures[2]], captions)
    with pytest.raises(UserError, match=r"CLIP score image 0 has shape \(3, 40, 36\), channels first"):
        scorer.score([pictures[0].transpose(2, 0, 1), *pictures[1:]], captions)

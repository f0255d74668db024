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


def test_a_negative_mean_is_clamped_and_the_unclamped_cosine_is_reported_with_its_interval(clip_dir):
    # Issue 15: CLIP score printed 0.000, the clamp of a mean 100·cos of -7.19, with no word of scale or clamp.
    from t2iscale.eval.clip_score import DEFINITION, mean_cosine_estimate
    from t2iscale.eval.metrics import metric_info
    from t2iscale.eval.samples import SampleScores

    scorer = ClipScorer(clip_dir)
    pictures, captions = images(12, seed=1), ["a cat", "short", "red", "dog"] * 3
    first = scorer.score(pictures, captions)
    negative = [i for i, score in enumerate(first["image_scores"]) if score < 0]
    assert len(negative) >= 4  # the tiny random CLIP puts several pairs below 0
    result = scorer.score([pictures[i] for i in negative], [captions[i] for i in negative])
    cosines = np.array(result["image_scores"]) / 100
    assert result["clip_score"] == 0.0 and result["clamped_at_zero"] is True  # the clamp is on the mean
    assert result["mean_cosine"] == pytest.approx(cosines.mean()) and result["mean_cosine"] < 0
    assert result["definition"] == DEFINITION and "torchmetrics" in DEFINITION and result["scale"] == [0, 100]
    assert first["clamped_at_zero"] is (first["mean_cosine"] < 0)

    prompt_ids = tuple(f"p{i % 2}" for i in range(len(negative)))  # 2 prompts, several images each
    samples = SampleScores(prompt_ids, tuple(range(len(negative))), result["image_scores"]).to_dict()
    estimate = mean_cosine_estimate(samples)
    per_prompt = [cosines[[p == name for p in prompt_ids]].mean() for name in ("p0", "p1")]
    assert estimate["value"] == pytest.approx(np.mean(per_prompt))  # the mean over prompts, in cos units
    assert -1 <= estimate["lo"] < estimate["value"] < estimate["hi"] <= 1
    assert estimate["n_prompts"] == 2 and estimate["n_samples"] == len(negative)

    line = metric_info("clip").headline(
        {**result, "mean_cosine_interval": estimate, "interval": {"lo": 0.0, "hi": 0.0}}
    )
    assert (
        line.startswith("CLIP score 0.000 [0.0000, 0.0000]") and "max(0, mean over images of 100·cos" in line
    )
    assert f"unclamped mean cos {estimate['value']:.4f} [{estimate['lo']:.4f}" in line and "2 prompts" in line
    assert "torchmetrics" in metric_info("clip").title and "0–100" in metric_info("clip").title

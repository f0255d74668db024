"""CLIP score (paper Sec. 3, "evaluation": one of the alignment metrics besides TIFA) through torchmetrics.

Definition (`DEFINITION`, printed with every value): torchmetrics' CLIPScore, max(0, mean over images of
100 · cos(image embedding, caption embedding)), on a 0–100 scale, clamped once, on the mean. It is *not* Hessel et
al.'s CLIPScore (EMNLP 2021: 2.5 · max(cos, 0) per image, 0–2.5), whose per-image clamp hides how far below 0 an
image falls. The clamp can hide a whole evaluation (a mean of 100·cos of −7.19 reads 0.000), so every result also
carries the unclamped mean cosine (−1..1) with its 95% interval over prompts and n (`mean_cosine_estimate`).

`torchmetrics.multimodal.CLIPScore`'s string argument only accepts hub names, so we hand it a callable that returns a model and a
processor loaded from a LOCAL directory (what `CLIPModel.save_pretrained` + `CLIPProcessor.save_pretrained`
write, e.g. a local copy of openai/clip-vit-large-patch14). Two adapters sit in between:

- the model adapter returns plain embedding tensors (transformers >= 5 returns an output object from
  `get_image_features` / `get_text_features`, which torchmetrics 1.9 does not expect);
- the processor adapter truncates captions to the text encoder's token limit *with* the end-of-text token kept
  (CLIP pools the text at that token), after we warn which captions are too long.

A small CLIPScore subclass also keeps each image's score, the per-sample scores that intervals and paired
comparisons are computed from. They are torchmetrics' own per-image scores, unclamped: torchmetrics clamps only
the mean at 0 (whatever its docstring says), so their mean is the headline CLIP score whenever that is positive.

Images reach the processor as uint8 (3, H, W), values 0..255, which it rescales by 1/255: every image goes
through `t2iscale.images.as_uint8_image` first (floats in [0, 1] to round(255 x), anything ambiguous refused),
so float and uint8 forms of the same images score the same (floats went through as they were and scored 0.0).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.multimodal.clip_score import _clip_score_update
from torchmetrics.multimodal import CLIPScore

from t2iscale.errors import UserError
from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.samples import SampleScores
from t2iscale.images import as_uint8_image
from t2iscale.progress import progress_bar

DEFINITION = (
    "torchmetrics CLIPScore: max(0, mean over images of 100·cos(image, caption)), 0–100, clamped on the mean"
)
SHORT_DEFINITION = "torchmetrics: max(0, mean 100·cos), 0–100"


def mean_cosine_estimate(samples: dict) -> dict:
    """The unclamped mean cos(image, caption) (−1..1) with its 95% interval over prompts and its n
    (`t2iscale.eval.intervals.replicate_estimate`), from the per-image 100·cos scores as a `SampleScores` dict."""
    scores = SampleScores.from_dict(samples)
    cosines = SampleScores(scores.prompt_ids, scores.seeds, scores.values / 100.0, scores.categories)
    return replicate_estimate([cosines], value_range=(-1.0, 1.0)).to_dict()


def _embedding(output):
    """transformers >= 5 returns a model output (projected embedding in `pooler_output`); older ones a tensor."""
    return getattr(output, "pooler_output", output)


class _ClipEmbeddings:
    """What CLIPScore calls on a model: `get_image_features`, `get_text_features`, `.config`, `.to(device)`."""

    def __init__(self, model):
        self.model = model.eval()
        self.config = model.config

    def to(self, device):
        self.model.to(device)
        return self

    def get_image_features(self, pixel_values):
        return _embedding(self.model.get_image_features(pixel_values=pixel_values))  # (B, D)

    def get_text_features(self, input_ids, attention_mask=None):
        return _embedding(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


class _TruncatingProcessor:
    """A CLIPProcessor whose text calls truncate to `max_tokens` (special tokens included)."""

    def __init__(self, processor, max_tokens: int):
        self.processor = processor
        self.max_tokens = max_tokens

    def __call__(self, *args, **kwargs):
        if kwargs.get("text") is not None:
            kwargs.update(truncation=True, max_length=self.max_tokens)
        return self.processor(*args, **kwargs)


class _PerImageClipScore(CLIPScore):
    """CLIPScore whose `update` (torchmetrics' own computation and running sum) also keeps each image's score."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("image_scores", default=[], dist_reduce_fx="cat")

    def update(self, source, target) -> None:
        score, n_samples = _clip_score_update(source, target, self.model, self.processor)  # (B,) 100 · cos
        self.score += score.sum(0)
        self.n_samples += n_samples
        self.image_scores.append(score.cpu())

    def per_image(self) -> list[float]:
        """100 · cos(image, caption) of every image so far, in update order (not clamped at 0)."""
        return torch.cat(self.image_scores).tolist()


class ClipScorer:
    """CLIP score of images against captions, from a local CLIP directory."""

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        from transformers import CLIPModel, CLIPProcessor

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise UserError(
                f"CLIP model directory {str(model_dir)!r} has no config.json; expected what "
                "CLIPModel.save_pretrained and CLIPProcessor.save_pretrained write"
            )
        try:
            model = CLIPModel.from_pretrained(model_dir, local_files_only=True)
            processor = CLIPProcessor.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load a CLIP model from {str(model_dir)!r}: {error}") from error
        self.source = str(model_dir)
        self.device = device
        self.model = _ClipEmbeddings(model.to(device))
        self.tokenizer = processor.tokenizer
        # The position table bounds the text length; tokenizers of hub CLIPs also say 77.
        self.max_tokens = min(
            model.config.text_config.max_position_embeddings, self.tokenizer.model_max_length
        )
        self.processor = _TruncatingProcessor(processor, self.max_tokens)

    def too_long(self, captions: list[str]) -> list[int]:
        """Indices of captions with more tokens (special tokens included) than the text encoder takes."""
        lengths = [len(ids) for ids in self.tokenizer(captions)["input_ids"]]
        return [index for index, length in enumerate(lengths) if length > self.max_tokens]

    def score(
        self, images: Iterable[np.ndarray], captions: list[str], batch_size: int = 32, progress: bool = False
    ) -> dict:
        """CLIP score (`DEFINITION`) of `images` (read lazily) against one caption per image.

        Images: np.uint8 (H, W, 3), or anything `t2iscale.images.as_uint8_image` converts unambiguously (floats
        in [0, 1]); others raise a UserError. Returns `clip_score` (0–100, the mean clamped at 0),
        `clamped_at_zero` (whether the clamp changed it), `mean_cosine` (the unclamped mean cos, −1..1),
        `definition`, and `image_scores`: each image's 100 · cos(image, caption), in the order of `images`.
        """
        if not captions:
            raise UserError("no images to compute a CLIP score for")
        long_ones = self.too_long(captions)
        if long_ones:
            warnings.warn(
                f"{len(long_ones)} caption(s) exceed the CLIP text limit of {self.max_tokens} tokens and are "
                f"truncated to it (first: {captions[long_ones[0]][:80]!r})",
                UserWarning,
                stacklevel=2,
            )
        metric = _PerImageClipScore(model_name_or_path=lambda: (self.model, self.processor))
        image_iter = iter(images)
        with torch.no_grad():
            starts = range(0, len(captions), batch_size)
            for start in progress_bar(starts, enabled=progress, desc="CLIP score"):
                batch_captions = captions[start : start + batch_size]
                batch = [
                    torch.from_numpy(as_uint8_image(image, f"CLIP score image {start + offset}"))
                    .permute(2, 0, 1)
                    .to(self.device)  # (3, H, W) uint8
                    for offset, image in enumerate(islice(image_iter, len(batch_captions)))
                ]
                if len(batch) != len(batch_captions):
                    raise ValueError(f"fewer images than the {len(captions)} captions")
                metric.update(batch, batch_captions)
            if next(image_iter, None) is not None:
                raise ValueError(f"more images than the {len(captions)} captions")
            value = float(metric.compute())
        image_scores = metric.per_image()
        mean_cosine = float(np.mean(image_scores)) / 100.0
        return {
            "clip_score": value,
            "definition": DEFINITION,
            "scale": [0.0, 100.0],
            "clamped_at_zero": mean_cosine < 0,
            "mean_cosine": mean_cosine,
            "n_images": len(captions),
            "n_truncated_captions": len(long_ones),
            "max_tokens": self.max_tokens,
            "model": self.source,
            "image_scores": image_scores,
        }

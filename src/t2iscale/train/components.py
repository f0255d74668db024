"""Build a run's parts from its config: data source, text conditioning, backbone, objective, accounting.

The loop, the benchmark and sampling all build through here, so they train and sample the very same thing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from t2iscale.diffusion.objectives import Objective, make_objective
from t2iscale.train.config import TrainConfig, run_setting
from t2iscale.train.model import DenoisingModel, LearnedTextConditioner, PrecomputedTextConditioner
from t2iscale.train.sources import ShapesSource
from t2iscale.zoo.accounting import Accounting, account
from t2iscale.zoo.backbone import Backbone, build


@dataclass
class RunComponents:
    source: object
    text_encoder: torch.nn.Module | None  # the learned encoder (trained jointly), else None
    backbone: Backbone
    objective: Objective
    model: DenoisingModel
    accounting: Accounting

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def data_counters(self) -> dict:
        counters = getattr(self.source, "counters", None)
        return counters() if counters else {}

    def save_final(self, folder: Path, ema=None) -> None:
        """Diffusers-format weights (`save_pretrained`), so `final/backbone` loads straight into diffusers."""
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(folder / "backbone")
        if self.text_encoder is not None:
            self.text_encoder.save(folder / "text_encoder")
        if ema is not None:
            # EMA weights go to their own folders; evaluation uses the non-EMA weights (paper's protocol).
            trained = self.trainable_parameters()
            ema.store(trained)
            ema.copy_to(trained)
            self.backbone.save_pretrained(folder / "ema" / "backbone")
            if self.text_encoder is not None:
                self.text_encoder.save(folder / "ema" / "text_encoder")
            ema.restore(trained)


def shapes_texts(world, sample_images: int = 500) -> list[str]:
    """Captions of a fixed sample of the world (every policy's candidates) and its evaluation prompts.

    A function of the world alone, so every run of a study (any data size, seed or caption policy) builds the same
    text encoder from it.
    """
    from t2iscale.data.shapes import ShapesDataset
    from t2iscale.data.shapes.prompts import eval_prompt_set

    sample = ShapesDataset(world, seed=0, size=sample_images, policy="mix", resolution=16)
    texts = []
    for index in range(sample_images):
        captions = sample.captions(index)
        texts.append(captions.alt)
        texts.extend(captions.synthetic)
    texts.extend(prompt.caption for prompt in eval_prompt_set(world).prompts)
    return texts


def warn_if_truncated(texts: list[str], max_length: int) -> None:
    """A caption cut at text.max_length loses its end (in the shapes world: the relation clause), silently."""
    from t2iscale.text.word_tokenizer import split_words

    lengths = [len(split_words(text)) + 1 for text in texts]  # + the [BOS] token
    cut = sum(length > max_length for length in lengths)
    if cut:
        warnings.warn(
            f"text.max_length={max_length} truncates {cut / len(lengths):.0%} of this world's captions "
            f"(the longest has {max(lengths)} tokens); raise text.max_length",
            stacklevel=2,
        )


def build_learned_text_encoder(world, text):
    from t2iscale.text.learned import LearnedTextEncoder
    from t2iscale.text.word_tokenizer import split_words

    texts = shapes_texts(world)
    warn_if_truncated(texts, text.max_length)
    vocabulary = sorted({word for caption in texts for word in split_words(caption)})
    return LearnedTextEncoder(
        vocabulary, dim=text.dim, max_length=text.max_length, layers=text.layers, heads=text.heads
    )


def build_components(
    config: TrainConfig, device: torch.device, rank: int = 0, world_size: int = 1
) -> RunComponents:
    data, text = config.data, config.text
    if data.kind == "shapes":
        source = ShapesSource(data, run_seed=config.seed)
        encoder = build_learned_text_encoder(source.dataset.world, text)
        conditioner = LearnedTextConditioner(encoder)
    else:
        from t2iscale.train.sources import PreparedSource

        source = PreparedSource(data, run_seed=config.seed, rank=rank, world_size=world_size)
        encoder = None
        conditioner = PrecomputedTextConditioner(*source.empty_caption())
    setting = run_setting(config)  # the study's plan accounts each run in this same setting
    backbone = build(config.model.backbone, setting)
    objective = make_objective(config.recipe.objective)
    model = DenoisingModel(backbone, conditioner, objective).to(device)
    return RunComponents(
        source=source,
        text_encoder=encoder,
        backbone=backbone,
        objective=objective,
        model=model,
        accounting=account(config.model.backbone, setting),
    )

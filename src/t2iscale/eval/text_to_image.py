"""A trained run as a text-to-image generator: captions + seeds -> uint8 images.

Used by `t2iscale sample`, by the evaluation's generate step and by evaluation along training, so all three produce
the same image for the same (weights, caption, seed): one RNG per seed (edm's generate.py), the same text encoder
(`text_encoder_for_sampling`), the recipe's autocast precision, and the run's evaluation settings (the commands
default to `eval.sampler_steps`, `eval.guidance`, `eval.use_ema`; paper: DDIM 50 steps, CFG 7.5). On CUDA the backbone's forward is replayed from CUDA graphs
(`t2iscale.diffusion.graphs`), captured once per batch shape and kept for the generator's lifetime.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from t2iscale.diffusion.graphs import GraphedForward
from t2iscale.diffusion.noise import initial_noise
from t2iscale.diffusion.objectives import Objective, make_objective
from t2iscale.diffusion.sampling import sample
from t2iscale.errors import UserError
from t2iscale.eval.generate import check_weights, read_run_config
from t2iscale.progress import progress_bar
from t2iscale.train import checkpoint
from t2iscale.train.config import TrainConfig
from t2iscale.train.device import autocast_dtype, resolve_mixed_precision
from t2iscale.train.run_dir import RunDir
from t2iscale.zoo.backbone import Backbone


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8, rounded as diffusers' `VaeImageProcessor` does
    ((x * 0.5 + 0.5) clamped to [0, 1], times 255, rounded), so exported pipelines give the same bytes."""
    images = ((images.float() * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu().numpy()


class PixelDecoder:
    clip_sample = True  # pixels live in [-1, 1]

    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        return to_uint8(x0)


class VaeDecoder:
    clip_sample = False  # latents are unbounded

    def __init__(self, vae):
        self.vae = vae

    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        return to_uint8(self.vae.decode(x0.to(self.vae.device)))


@dataclass
class TextToImage:
    backbone: Backbone
    text_encoder: torch.nn.Module  # encode(captions) -> (ctx (B, L, D), mask (B, L))
    objective: Objective
    decoder: object  # x0 (B, C, h, w) -> uint8 (B, H, W, 3)
    autocast_dtype: torch.dtype | None = None
    cuda_graphs: bool = True  # replay the backbone from CUDA graphs on CUDA (no effect elsewhere)
    _forward: GraphedForward | None = field(default=None, init=False, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def forward(self) -> GraphedForward:
        """The backbone call the sampler makes; its graphs persist across `generate` calls."""
        if self._forward is None:
            self._forward = GraphedForward(self.backbone, enabled=self.cuda_graphs)
        return self._forward

    @torch.inference_mode()
    def generate(
        self,
        captions: list[str],
        seeds: list[int],
        steps: int = 50,
        guidance: float = 7.5,
        batch_size: int = 64,
        progress: bool = False,
    ) -> np.ndarray:
        """Images (N, H, W, 3) uint8 for N (caption, seed) pairs; image i depends only on caption i and seed i."""
        if len(captions) != len(seeds):
            raise UserError(f"{len(captions)} captions but {len(seeds)} seeds")
        warn_dropped_words(self.text_encoder, captions)
        was_training = self.backbone.training, self.text_encoder.training
        self.backbone.eval()
        self.text_encoder.eval()
        setting = self.backbone.setting
        shape = (setting.in_channels, setting.sample_size, setting.sample_size)
        uncond_ctx, uncond_mask = self.text_encoder.encode([""])  # (1, L, D), (1, L)
        outputs = []
        starts = range(0, len(captions), batch_size)
        for start in progress_bar(starts, enabled=progress, desc="generate", unit="batch"):
            part = slice(start, start + batch_size)
            noise = initial_noise(seeds[part], shape, device=self.device)  # (b, C, h, w)
            ctx, mask = self.text_encoder.encode(captions[part])  # (b, L, D), (b, L)
            x0 = sample(
                self.forward,
                self.objective,
                noise,
                ctx,
                mask,
                uncond_ctx,
                uncond_mask,
                steps=steps,
                guidance=guidance,
                clip_sample=self.decoder.clip_sample,
                autocast_dtype=self.autocast_dtype,
            )
            outputs.append(self.decoder(x0))
        self.backbone.train(was_training[0])
        self.text_encoder.train(was_training[1])
        return np.concatenate(outputs) if outputs else np.empty((0, 0, 0, 3), np.uint8)


def warn_dropped_words(text_encoder, captions: list[str], shown: int = 3) -> None:
    """Warn, naming them, about words the encoder cannot see (outside its vocabulary, or past its length)."""
    dropped_words = getattr(text_encoder, "dropped_words", None)
    if dropped_words is None:
        return
    lost = {caption: why for caption in dict.fromkeys(captions) if (why := dropped_words(caption))}
    if not lost:
        return
    examples = "; ".join(f"{caption!r}: {why}" for caption, why in list(lost.items())[:shown])
    more = f" (and {len(lost) - shown} more)" if len(lost) > shown else ""
    warnings.warn(
        f"{len(lost)} of {len(set(captions))} prompts lose words the text encoder cannot see: {examples}{more}",
        stacklevel=3,
    )


def run_config(run_dir: str | Path) -> TrainConfig:
    """The run's config (`t2iscale.eval.generate.read_run_config`, torch-free)."""
    return read_run_config(run_dir)


# Prepared embeddings are stored in float16 or bfloat16 (relative rounding 1e-3 or 4e-3); an encoder with another
# layer, length or normalisation differs by O(1) (a last-vs-penultimate CLIP layer: 2.67).
EMPTY_CAPTION_TOLERANCE = 0.05


def text_encoder_for_sampling(config: TrainConfig, device: torch.device, learned=None):
    """The text encoder that sampling and evaluation condition on: the one training saw.

    The shapes world's learned encoder is part of the weights (`learned`). Prepared data was encoded by a frozen
    encoder with the options prepared.json records (layer, max_length, final_norm, dtype); it is rebuilt with all
    of them (from `text.path` when given, else the folder it was prepared from), and checked against the stored
    empty-caption embedding, which training used for caption dropout.
    """
    if learned is not None:
        return learned
    from t2iscale.data.prepared_meta import read_prepared_meta
    from t2iscale.text import load_described_text_encoder

    meta = read_prepared_meta(config.data.path)
    encoder = load_described_text_encoder(meta.text_encoder, path=config.text.path, device=device)
    check_empty_caption(encoder, Path(config.data.path) / meta.empty_caption_file)
    return encoder


def check_empty_caption(encoder, stored_file: Path) -> None:
    """Refuse an encoder whose empty-caption embedding is not the stored one (another model, layer or length)."""
    from safetensors.torch import load_file

    stored = load_file(str(stored_file))
    stored_ctx, stored_mask = stored["text_ctx"].float(), stored["text_mask"].bool()  # (L, D), (L,)
    ctx, mask = encoder.encode([""])  # (1, L, D), (1, L)
    ctx, mask = ctx[0].float().cpu(), mask[0].cpu()
    settings = getattr(encoder, "describe", dict)()
    if ctx.shape != stored_ctx.shape or not torch.equal(mask, stored_mask):
        raise UserError(
            f"the text encoder ({settings}) gives the empty caption shape {tuple(ctx.shape)}, but the data in "
            f"{stored_file.parent} was prepared with {tuple(stored_ctx.shape)}: give the encoder it was prepared "
            "with (text.path)"
        )
    difference = (ctx - stored_ctx).abs().max().item()
    if not difference <= EMPTY_CAPTION_TOLERANCE * max(1.0, stored_ctx.abs().max().item()):
        raise UserError(
            f"the text encoder ({settings}) does not reproduce the empty-caption embedding the data in "
            f"{stored_file.parent} was prepared with (max difference {difference:.3g}): give the encoder it was "
            "prepared with (text.path)"
        )


def decoder_for(config: TrainConfig, device: torch.device):
    if config.data.kind == "shapes":
        return PixelDecoder()
    from t2iscale.data.prepared_meta import read_prepared_meta
    from t2iscale.data.vae import LatentVAE

    meta = read_prepared_meta(config.data.path)
    return VaeDecoder(LatentVAE(meta.vae["path"], device=device))


def load_text_to_image(
    run_dir: str | Path, weights: str = "final", ema: bool = False, device: str | torch.device | None = None
) -> TextToImage:
    """Load a run for sampling. `weights`: 'final' (diffusers folders), 'latest' or 'step_N' (a checkpoint)."""
    from t2iscale.text import load_text_encoder
    from t2iscale.zoo.backbone import load_backbone

    config = run_config(run_dir)
    check_weights(run_dir, config, weights, ema)
    run = RunDir(run_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    objective = make_objective(config.recipe.objective)
    if weights == "final":
        folder = run.final / "ema" if ema else run.final
        backbone = load_backbone(folder / "backbone", device=device)
        learned = (
            load_text_encoder(folder / "text_encoder", device=device)
            if (folder / "text_encoder").is_dir()
            else None
        )
    else:
        from safetensors.torch import load_file

        from t2iscale.train.components import build_components

        available = dict(checkpoint.complete_checkpoints(run.checkpoints))  # step -> folder
        if weights == "latest":
            folder = available[max(available)] if available else None
        else:
            step = weights.removeprefix("step_")
            folder = available.get(int(step)) if step.isdigit() else None
        if folder is None:
            have = ", ".join(f"step_{step}" for step in sorted(available)) or "none"
            raise UserError(f"no checkpoint {weights!r} in {run.checkpoints} (have: {have}; or use 'final')")
        components = build_components(config, device)
        components.model.load_state_dict(load_file(folder / "model.safetensors", device=str(device)))
        backbone, learned = components.backbone, components.text_encoder
    encoder = text_encoder_for_sampling(config, device, learned)
    # The precision evaluation along training samples with (t2iscale.eval.along_training), so a run's images match.
    precision = resolve_mixed_precision(config.recipe.mixed_precision, device)
    return TextToImage(backbone, encoder, objective, decoder_for(config, device), autocast_dtype(precision))

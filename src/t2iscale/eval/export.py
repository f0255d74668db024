"""Export a trained run as a diffusers pipeline folder that a stock `StableDiffusionPipeline` loads and samples.

The folder holds `unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/` and `model_index.json` (written by
the pipeline's own `save_pretrained`), plus `t2iscale_export.json`, which records where the weights came from and
the call that reproduces `t2iscale sample`:

    pipe = StableDiffusionPipeline.from_pretrained(folder)
    generator = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]  # one RNG per image, as t2iscale
    pipe(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generator).images

With float32 weights and no autocast that call gives the same uint8 images as `t2iscale sample` (tested bitwise
on tiny random parts, `tests/eval/test_export.py`). What makes them equal:

- the scheduler is the sampler's own (`make_scheduler`: DDIM, LDM settings, eta 0);
- the UNet gets no text mask in either (`UNetBackbone`: SD-family UNets attend to every context token, as the
  stock pipelines call them);
- the text encoder gives the context training saw: a CLIP run that conditions on the penultimate block + final
  norm (SD2's choice, this toolkit's default) is exported with its last block removed, which is how SD2's own
  `text_encoder/` is published, so the pipeline's `last_hidden_state` is that context; the tokenizer pads to the
  run's `max_length`;
- latents are decoded with `latents / scaling_factor`, which is the pipeline's rule, and uint8 rounding is the
  pipeline's (`t2iscale.eval.text_to_image.to_uint8`).

What has no stock pipeline is refused before anything is written: the shapes world (a learned word-level text
encoder and pixel-space sampling), flow-matching runs (the pipeline's DDIM-style loop), T5 text encoders, CLIP
contexts without the final norm (SDXL's penultimate layer needs SDXL's two-encoder pipeline), VAEs with a latent
shift or per-channel statistics, and non-UNet backbones. docs/export.md says the same for users.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.eval.generate import SamplerSettings, check_weights, read_run_config
from t2iscale.file_modes import restore_umask_mode

EXPORT_FILE = "t2iscale_export.json"
PIPELINE_CLASS = "StableDiffusionPipeline"
SAMPLERS_EXPORTED = ("ddpm-eps", "ddpm-v")  # objectives sampled with DDIM, the stock pipeline's kind of loop


def check_exportable_config(config) -> None:
    """Refuse, torch-free, a run whose kind of parts no stock pipeline loads (see the module docstring)."""
    if config.data.kind == "shapes":
        raise UserError(
            "a shapes-world run cannot be exported to a stock diffusers pipeline: its text encoder is t2iscale's "
            "learned word-level encoder (no transformers class) and it samples in pixel space (no VAE); sample it "
            "with `t2iscale sample`"
        )
    objective = config.recipe.objective
    if objective not in SAMPLERS_EXPORTED:
        raise UserError(
            f"recipe.objective is {objective!r}: {PIPELINE_CLASS} samples DDPM objectives "
            f"({', '.join(SAMPLERS_EXPORTED)}) with DDIM; export supports only those"
        )


def _check_exportable_parts(generator) -> None:
    """Refuse parts the stock pipeline would use differently than `t2iscale sample` does."""
    from diffusers import UNet2DConditionModel

    from t2iscale.text.pretrained import PretrainedTextEncoder

    backbone, encoder, vae = generator.backbone, generator.text_encoder, generator.decoder.vae
    if not isinstance(backbone.model, UNet2DConditionModel) or backbone.needs_added_conditions:
        raise UserError(
            f"backbone {backbone.name!r} ({type(backbone.model).__name__}) is not a plain UNet2DConditionModel: "
            f"{PIPELINE_CLASS} cannot drive it"
        )
    if not isinstance(encoder, PretrainedTextEncoder) or encoder.family != "clip":
        raise UserError(
            f"the run's text encoder ({encoder.describe()}) is not a CLIP text model: {PIPELINE_CLASS} encodes "
            "prompts with CLIP"
        )
    if not encoder.final_norm:
        raise UserError(
            "the run's CLIP context skips the final layer norm (text encoder option final_norm=False, SDXL's "
            f"choice): {PIPELINE_CLASS} always applies it"
        )
    if vae.shift_factor or vae._channel_mean is not None:
        raise UserError(
            f"the VAE {vae.path} normalizes latents with a shift or per-channel statistics: {PIPELINE_CLASS} "
            "only divides by scaling_factor"
        )


def pipeline_text_encoder(encoder):
    """The CLIP text model whose `last_hidden_state` is the run's context (B, L, D).

    `layer="last"`: the model as is. `layer="penultimate"` (+ final norm): a copy without its last block; CLIP is
    causal and each block sees only the blocks below it, so the copy's output is exactly `hidden_states[-2]`
    through the final norm (SD2's published `text_encoder/` is OpenCLIP-H cut the same way).
    """
    if encoder.layer == "last":
        return encoder.model
    model = copy.deepcopy(encoder.model)
    text_model = getattr(model, "text_model", model)  # transformers 4.x nests the layers under .text_model
    text_model.encoder.layers = text_model.encoder.layers[:-1]
    model.config.num_hidden_layers -= 1
    return model


def export_pipeline(
    run_dir: str | Path, out: str | Path, weights: str = "final", ema: bool = False, device: str = "cpu"
) -> Path:
    """Write the run's weights (`weights`: 'final', 'latest' or 'step_N'; `ema`: the final EMA copy) to `out`
    as a `StableDiffusionPipeline` folder; returns `out`.

    Errors (UserError, before anything is written): `out` exists and is not empty, the run lacks the weights, or
    its parts have no stock pipeline (module docstring). The folder is written beside `out` and renamed into place.
    """
    out = Path(out)
    config = read_run_config(run_dir)
    check_exportable_config(config)
    check_weights(run_dir, config, weights, ema)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} already exists and is not empty; give a new folder")

    from diffusers import StableDiffusionPipeline

    from t2iscale.diffusion.sampling import make_scheduler
    from t2iscale.eval.text_to_image import load_text_to_image

    generator = load_text_to_image(run_dir, weights=weights, ema=ema, device=device)
    _check_exportable_parts(generator)
    encoder, vae = generator.text_encoder, generator.decoder.vae
    tokenizer = copy.deepcopy(encoder.tokenizer)
    tokenizer.model_max_length = encoder.max_length  # the pipeline pads and truncates to this
    pipeline = StableDiffusionPipeline(
        vae=vae.model,
        text_encoder=pipeline_text_encoder(encoder),
        tokenizer=tokenizer,
        unet=generator.backbone.model,
        scheduler=make_scheduler(generator.objective, "ddim", clip_sample=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    settings = SamplerSettings.of_run(config, ema=ema, weights=weights)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    pipeline.save_pretrained(staging)
    record = {
        "pipeline": PIPELINE_CLASS,
        "run": str(Path(run_dir).resolve()),
        "backbone": generator.backbone.name,
        "weights": weights,
        "ema": ema,
        "text_encoder": encoder.describe(),
        "vae": vae.describe(),
        "call": {
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance,
            "eta": 0.0,
            "generator": "one torch.Generator('cpu').manual_seed(seed) per image",
            "height": generator.backbone.setting.resolution,
            "width": generator.backbone.setting.resolution,
        },
        "text_mask": "not passed to the UNet (as in t2iscale training and sampling of UNets)",
    }
    (staging / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    restore_umask_mode(staging)  # readable by whoever may read `out` (safetensors 0.8 writes 0600)
    if out.exists():
        out.rmdir()  # empty (checked above)
    staging.rename(out)
    return out

"""Generate, then score, linked by files (edm's generate.py): prompts × seeds -> PNGs + a manifest.

Every (prompt, seed) image depends only on the weights, the caption and the seed, so all backbones of a study see
identical starting noise for identical prompts.

The run-reading helpers here are torch-free, so `t2iscale sample` and `t2iscale eval generate` refuse a wrong run
folder, or weights the run does not have, before torch loads (which takes seconds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.eval.manifest import ManifestEntry, write_manifest
from t2iscale.eval.prompt_source import PromptSource
from t2iscale.images import save_png
from t2iscale.train.config import TrainConfig, validate_config
from t2iscale.train.run_dir import RunDir

MANIFEST_NAME = "manifest.jsonl"


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The run's resolved config (config.json); a clear error if the folder is not a run. Torch-free."""
    run = RunDir(run_dir).require()
    try:
        raw = json.loads(run.config_file.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{run.config_file}: line {error.lineno}: {error.msg}") from None
    return validate_config(raw, source=str(run.config_file))


def check_weights(run_dir: str | Path, config: TrainConfig, weights: str, ema: bool) -> None:
    """Refuse, with the reason, weights the run does not have (before anything loads). Torch-free."""
    run = RunDir(run_dir)
    if ema and not config.recipe.uses_ema:
        raise UserError(
            f"{run.path} was trained without EMA (recipe.ema_decay = {config.recipe.ema_decay}): "
            "it has no EMA weights; leave out --ema"
        )
    if weights != "final":
        if ema:
            raise UserError("EMA weights are saved with the final weights only; use --weights final")
        return
    if not (run.final / "backbone").is_dir():
        raise UserError(
            f"{run.final / 'backbone'} not found: the run has not finished (try --weights latest)"
        )
    if ema and not (run.final / "ema" / "backbone").is_dir():
        raise UserError(
            f"{run.final / 'ema' / 'backbone'} not found: the run's final weights have no EMA copy"
        )


@dataclass(frozen=True)
class SamplerSettings:
    """How a run's images are made; the run's evaluation settings unless a flag overrides one."""

    steps: int
    guidance: float
    ema: bool

    @classmethod
    def of_run(
        cls,
        config: TrainConfig,
        steps: int | None = None,
        guidance: float | None = None,
        ema: bool | None = None,
        weights: str = "final",
    ) -> SamplerSettings:
        """The run's evaluation settings, each replaced by the flag given. EMA weights exist with the final
        weights only, so a checkpoint is sampled without them unless `ema` asks (which `check_weights` refuses)."""
        evaluation = config.eval
        return cls(
            steps=evaluation.sampler_steps if steps is None else steps,
            guidance=evaluation.guidance if guidance is None else guidance,
            ema=(evaluation.use_ema and weights == "final") if ema is None else ema,
        )

    def __str__(self) -> str:
        return f"{self.steps} steps, CFG {self.guidance:g}, {'EMA' if self.ema else 'non-EMA'} weights"

    def describe(self, config: TrainConfig) -> str:
        """These settings, and whether the run's evaluation used them (its images are then the report's)."""
        of_run = SamplerSettings.of_run(config)
        if self == of_run:
            return f"{self}: the run's evaluation settings"
        return f"{self}; the run's evaluation used {of_run}"


def generate_images(
    text_to_image,
    source: PromptSource,
    seeds: list[int],
    out_dir: str | Path,
    steps: int = 50,
    guidance: float = 7.5,
    batch_size: int = 64,
    progress: bool = True,
) -> Path:
    """Write `out_dir/images/<prompt>_s<seed>.png` and `out_dir/manifest.jsonl`; returns the manifest path."""
    out_dir = Path(out_dir)
    pairs = [(prompt_id, caption, seed) for prompt_id, caption in source.prompts for seed in seeds]
    images = text_to_image.generate(
        [caption for _, caption, _ in pairs],
        [seed for _, _, seed in pairs],
        steps=steps,
        guidance=guidance,
        batch_size=batch_size,
        progress=progress,
    )
    entries = []
    for (prompt_id, caption, seed), image in zip(pairs, images):
        relative = f"images/{prompt_id}_s{seed}.png"
        save_png(out_dir / relative, image)
        entries.append(ManifestEntry(prompt_id=prompt_id, seed=seed, path=relative, caption=caption))
    return write_manifest(out_dir / MANIFEST_NAME, entries)

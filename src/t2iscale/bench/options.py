"""What one `t2iscale bench` invocation measures: a typed, validated set of options. Torch-free.

The setting follows the zoo's: the paper's latents (resolution / 8, 4 channels) with OpenCLIP-H context
(77 x 1024) unless `pixel`, `text_dim` or `text_len` say otherwise (Li et al., CVPR 2024, Sec. 3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from t2iscale.errors import UserError
from t2iscale.zoo.setting import PAPER_SETTING, Setting

MEASURES = ("forward", "train", "loop", "sampling")
BASELINES = ("auto", "none", "stock", "eager")
PRECISIONS = ("bf16", "fp32")
# Recipe fields the bench sets from its own options; `--set` may not change them behind the options' back.
RECIPE_FIELDS_FROM_OPTIONS = ("global_batch", "mixed_precision", "compile", "channels_last")


def parse_positive_ints(text: str, option: str) -> tuple[int, ...]:
    """'1,8,64' -> (1, 8, 64); anything else is a UserError naming the option."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{option} must be comma-separated positive integers, got {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise UserError(f"{option} must be comma-separated positive integers, got {text!r}")
    return values


def parse_measures(text: str) -> tuple[str, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in parts if part not in MEASURES]
    if unknown or not parts:
        raise UserError(f"--measure takes a comma-separated subset of {', '.join(MEASURES)}, got {text!r}")
    return tuple(measure for measure in MEASURES if measure in parts)  # fixed order, no repeats


@dataclass(frozen=True)
class BenchOptions:
    names: tuple[str, ...]
    measures: tuple[str, ...] = ("forward", "train")
    # auto: the stock loop next to the toolkit for `sampling`, toolkit only for `forward` and `train`.
    baseline: str = "auto"
    batch_sizes: tuple[int, ...] = (1, 8, 64)
    resolutions: tuple[int, ...] = (PAPER_SETTING.resolution,)
    pixel: bool = False
    text_dim: int = PAPER_SETTING.text_dim
    text_len: int = PAPER_SETTING.text_len
    steps: int = 20  # timed repetitions per measurement
    warmup: int = 5  # untimed repetitions after the first one
    # auto: what each path does by default (training: regional on CUDA from 100M parameters; forward and sampling: off,
    # as evaluation loads backbones uncompiled); off, full or regional: that, for every toolkit row.
    compile: str = "auto"
    channels_last: bool = False
    cuda_graphs: bool = True  # sampling: the evaluation's CUDA-graph replay of the backbone
    precision: str = "bf16"
    device: str = "auto"
    sampling_steps: int = 50  # DDIM steps (paper: 50)
    guidance: float = 7.5  # CFG scale (paper: 7.5)
    recipe_overrides: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if not self.names:
            raise UserError("t2iscale bench needs at least one zoo NAME (see `t2iscale zoo`)")
        for measure in self.measures:
            if measure not in MEASURES:
                raise UserError(f"unknown measure {measure!r}; valid: {', '.join(MEASURES)}")
        if self.baseline not in BASELINES:
            raise UserError(f"--baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for option, value in (
            ("--steps", self.steps),
            ("--sampling-steps", self.sampling_steps),
            ("--text-dim", self.text_dim),
            ("--text-len", self.text_len),
        ):
            if value < 1:
                raise UserError(f"{option} must be at least 1, got {value}")
        if self.warmup < 0:
            raise UserError(f"--warmup must be 0 or more, got {self.warmup}")
        if self.guidance < 0:
            raise UserError(f"--guidance must be 0 or more, got {self.guidance}")

    @property
    def mixed_precision(self) -> str:
        """The recipe's spelling: bf16 autocast over fp32 weights, or plain fp32 ('no')."""
        return "bf16" if self.precision == "bf16" else "no"

    def with_stock(self, measure: str) -> bool:
        if self.baseline == "auto":
            return measure == "sampling"
        return self.baseline == "stock" and measure != "loop"  # the stock side has no loop of its own

    def with_eager(self, measure: str) -> bool:
        """--baseline eager: the toolkit's own path with compile off next to each toolkit row (its ratio is what
        --compile buys; `run_benchmark` refuses it when nothing is compiled)."""
        return self.baseline == "eager" and measure != "loop"

    def settings(self) -> list[Setting]:
        """One setting per resolution: paper latents (/8, 4 channels) or pixels (3 channels)."""
        settings = []
        for resolution in self.resolutions:
            try:
                settings.append(
                    Setting(
                        resolution=resolution,
                        latent_factor=1 if self.pixel else PAPER_SETTING.latent_factor,
                        in_channels=3 if self.pixel else PAPER_SETTING.in_channels,
                        text_dim=self.text_dim,
                        text_len=self.text_len,
                    )
                )
            except UserError as error:
                raise UserError(f"--resolutions {resolution}: {error}") from None
        return settings

    def check_names(self) -> None:
        """Fail before any work on a bad name, a name the common backbone signature cannot drive, or a
        resolution a family cannot take (e.g. an odd PixArt grid)."""
        from t2iscale.zoo.names import resolve

        for name in self.names:
            entry = resolve(name)
            for setting in self.settings():
                config = entry.model_config(setting)
                # SDXL's add-embedding needs pooled text and micro-conditioning the common signature does not carry;
                # IF's "text" addition embedding pools the context the backbone already gets.
                if config.get("addition_embed_type") == "text_time":
                    raise UserError(
                        f"zoo name {name!r} keeps SDXL's add-embedding (pooled text + micro-conditioning) for "
                        "parameter parity; the benchmark drives the common signature only (bench `sdxl`)"
                    )

    def recipe(self, batch_size: int):
        """The toolkit's recipe for a training step of `batch_size` images: the paper defaults, `--set` overrides,
        and the bench's own precision / compile / channels-last options."""
        from pydantic import ValidationError

        from t2iscale.strict import format_validation_error
        from t2iscale.train.config import RecipeConfig, parse_override

        raw: dict[str, Any] = {}
        for text in self.recipe_overrides:
            path, value = parse_override(text)
            key = ".".join(path).removeprefix("recipe.")
            if key in RECIPE_FIELDS_FROM_OPTIONS:
                raise UserError(
                    f"--set {text!r}: {key} comes from the bench's own options "
                    "(--batch-sizes, --precision, --compile, --channels-last)"
                )
            raw[key] = value
        raw.update(
            global_batch=batch_size,
            mixed_precision=self.mixed_precision,
            compile=self.compile,
            channels_last=self.channels_last,
        )
        try:
            return RecipeConfig.model_validate(raw)
        except ValidationError as error:
            problems = format_validation_error(error, unknown="unknown recipe key")
            raise UserError(f"--set: {problems}") from None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

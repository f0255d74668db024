"""The metadata of a prepared data directory, `prepared.json` (`PreparedMeta`). Torch-free.

Read by the study's plan and by the training components to know a run's setting (resolution, latent shape, text
width and length) without loading torch; `t2iscale.data.prepared` holds the shards' reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from t2iscale.errors import UserError
from t2iscale.strict import Strict, format_validation_error
from t2iscale.zoo.setting import Setting

META_FILE = "prepared.json"
EMPTY_CAPTION_FILE = "empty_caption.safetensors"
FORMAT_NAME = "t2iscale-prepared"
FORMAT_VERSION = 1


def shard_file_name(shard_index: int) -> str:
    return f"shard-{shard_index:06d}.safetensors"


class PreparedShard(Strict):
    file: str
    count: int


class PreparedMeta(Strict):
    """The contents of prepared.json."""

    format: Literal["t2iscale-prepared"] = FORMAT_NAME
    version: Literal[1] = FORMAT_VERSION
    count: int
    shards: list[PreparedShard]
    resolution: int
    latent_shape: tuple[int, int, int]
    storage_dtype: Literal["float16", "bfloat16"]
    vae: dict  # LatentVAE.describe(): path, scaling/shift factor, posterior = "mean", ...
    text_encoder: dict  # TextEncoder.describe(): name, dim, max_length, layer, ...
    empty_caption_file: str = EMPTY_CAPTION_FILE
    subset_seed: int
    size: int | None
    source_shards: list[str]
    counters: dict  # DataCounters.to_json() of the raw pass: good, bad by reason, bad by shard
    fingerprint: dict  # the settings that determine the output (prepare refuses to mix two of them)

    @property
    def text_dim(self) -> int:
        return int(self.text_encoder["dim"])

    @property
    def text_length(self) -> int:
        return int(self.text_encoder["max_length"])

    def setting(self) -> Setting:
        """What a backbone trained on this data is fed: its resolution, latents, text width and length."""
        channels, height, _ = self.latent_shape
        return Setting(self.resolution, self.resolution // height, channels, self.text_dim, self.text_length)


def read_prepared_meta(root: str | Path) -> PreparedMeta:
    path = Path(root) / META_FILE
    if not path.exists():
        raise UserError(
            f"{str(root)!r} is not a prepared data directory (no {META_FILE}; run `t2iscale data prepare`)"
        )
    try:
        return PreparedMeta.model_validate_json(path.read_text())
    except ValidationError as error:
        raise UserError(f"{path}: {format_validation_error(error)}") from error

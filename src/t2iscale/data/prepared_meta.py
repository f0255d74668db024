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
    # Recorded since caption sources and noun counting (None in older folders: unknown).
    with_synthetic: int | None = None  # samples with at least one synthetic caption
    noun_pairs: dict[str, int] | None = None  # caption policy -> image-noun pairs of the shard (`data.nouns`)


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
    captions: dict | None = (
        None  # CaptionSources.describe(): where the alt-text and synthetic captions came from
    )
    noun_tagger: dict | None = None  # NounCounter.describe(), when image-noun pairs were counted

    @property
    def with_synthetic(self) -> int | None:
        """Samples with synthetic captions; None when the folder does not record it."""
        counts = [shard.with_synthetic for shard in self.shards]
        return None if any(count is None for count in counts) else sum(counts)

    @property
    def has_noun_pairs(self) -> bool:
        return bool(self.shards) and all(shard.noun_pairs is not None for shard in self.shards)

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


def caption_policy_problem(meta: PreparedMeta, policy: str, max_bad_fraction: float) -> str | None:
    """Why the prepared data cannot serve `policy` (None when it can, or when the folder does not say).

    A policy that needs synthetic captions drops the samples without them; more than `max_bad_fraction` of the
    prepared samples dropped stops training (`PreparedDataset`). Counted over the whole folder: a size cap takes a
    hash-ordered sample of it, so the fraction is the same in expectation.
    """
    from t2iscale.data.caption_policy import needs_synthetic

    with_synthetic = meta.with_synthetic
    if with_synthetic is None or not needs_synthetic(policy) or not meta.count:
        return None
    missing = meta.count - with_synthetic
    if missing <= max_bad_fraction * meta.count:
        return None
    what = "none has" if with_synthetic == 0 else f"{missing} of {meta.count} have none"
    return (
        f"caption policy {policy!r} needs synthetic captions, but of the {meta.count} prepared samples {what} "
        f"(more than data.max_bad_fraction {max_bad_fraction}); set data.caption_policy=alt, or prepare "
        "with --synthetic-captions MEMBER:FIELD"
    )


def dataset_noun_pairs(root: str | Path, meta: PreparedMeta, size: int | None, policy: str) -> int | None:
    """D: the image-noun pairs of the training set a run reads (its first `size` samples, `policy`'s captions).

    None when the folder has no noun counts (prepared without --noun-tagger). The whole folder sums the shard
    totals in prepared.json; a size cap reads each shard's `subset_keys` and `noun_pairs` (numpy, no torch) and
    takes the first `size` in the nested-subset order, as the training reader does.
    """
    import numpy as np

    from t2iscale.data.caption_policy import CAPTION_POLICIES

    if not meta.has_noun_pairs:
        return None
    if size is None or size >= meta.count:
        return sum(shard.noun_pairs[policy] for shard in meta.shards)
    from safetensors import safe_open

    keys, counts = [], []
    column = CAPTION_POLICIES.index(policy)
    for shard in meta.shards:
        with safe_open(str(Path(root) / shard.file), framework="numpy") as handle:
            keys.append(handle.get_tensor("subset_keys"))
            counts.append(handle.get_tensor("noun_pairs")[:, column])
    order = np.argsort(np.concatenate(keys), kind="stable")[:size]
    return int(np.concatenate(counts)[order].astype(np.int64).sum())


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

"""Per-sample scores of one evaluation: the raw material of every interval and paired comparison. Torch-free.

An evaluation scores P prompts × E eval seeds images; a per-image metric (TIFA, CLIP score) gives one score per
(prompt, eval seed) pair, its *sample*. Keeping them (not only their mean) is what lets a value carry an interval
over prompts and two runs be compared pair by pair on the same prompts and seeds (DESIGN.md, "Findings and
statistics"). Set statistics (FID) have no samples; they carry their N instead.

JSON form (one evaluation; lists aligned, one entry per image, `category` optional):

    {"prompt_id": ["colors_000", ...], "seed": [0, ...], "value": [0.667, ...], "category": ["colors", ...]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from t2iscale.errors import UserError

_KEYS = ("prompt_id", "seed", "value")
_OPTIONAL = ("category",)


@dataclass(frozen=True, eq=False)
class SampleScores:
    """Scores of one evaluation, one per (prompt id, eval seed) pair.

    `values` is a float array (n,); `prompt_ids`, `seeds` and `categories` (None when the prompts have none)
    are aligned with it. A pair may appear once only.
    """

    prompt_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    values: np.ndarray
    categories: tuple[str | None, ...] | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        prompt_ids = tuple(self.prompt_ids)
        seeds = tuple(self.seeds)
        values = np.asarray(self.values, dtype=float)
        n = len(prompt_ids)
        if n == 0:
            raise UserError("per-sample scores: no samples")
        if values.shape != (n,) or len(seeds) != n:
            raise UserError(
                f"per-sample scores: {n} prompt ids, {len(seeds)} seeds and {values.size} values must be aligned"
            )
        for prompt_id in prompt_ids:
            if not isinstance(prompt_id, str) or not prompt_id:
                raise UserError(f"per-sample scores: prompt ids must be non-empty strings, got {prompt_id!r}")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise UserError(f"per-sample scores: seeds must be integers, got {seed!r}")
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = bad[0]
            raise UserError(
                f"per-sample scores: prompt {prompt_ids[i]!r} seed {seeds[i]} has a non-finite value {values[i]}"
            )
        keys = list(zip(prompt_ids, seeds))
        if len(set(keys)) != n:
            seen = set()
            for key in keys:
                if key in seen:
                    raise UserError(f"per-sample scores: prompt {key[0]!r} seed {key[1]} appears twice")
                seen.add(key)
        categories = None if self.categories is None else tuple(self.categories)
        if categories is not None and len(categories) != n:
            raise UserError(f"per-sample scores: {len(categories)} categories for {n} samples")
        set_(self, "prompt_ids", prompt_ids)
        set_(self, "seeds", tuple(int(seed) for seed in seeds))
        set_(self, "values", values)
        set_(self, "categories", categories)

    def __eq__(self, other) -> bool:
        # by value, so two reads of one study give equal curves (the dataclass's own eq would compare arrays)
        if not isinstance(other, SampleScores):
            return NotImplemented
        same_keys = (self.prompt_ids, self.seeds, self.categories) == (
            other.prompt_ids,
            other.seeds,
            other.categories,
        )
        return same_keys and np.array_equal(self.values, other.values)

    __hash__ = None

    def __len__(self) -> int:
        return len(self.prompt_ids)

    @property
    def keys(self) -> list[tuple[str, int]]:
        return list(zip(self.prompt_ids, self.seeds))

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def only_category(self, category: str) -> SampleScores:
        """The samples of one prompt category (UserError when there are none, or no categories at all)."""
        if self.categories is None:
            raise UserError("per-sample scores carry no prompt categories")
        keep = [i for i, name in enumerate(self.categories) if name == category]
        if not keep:
            raise UserError(f"per-sample scores hold no prompt of category {category!r}")
        return SampleScores(
            tuple(self.prompt_ids[i] for i in keep),
            tuple(self.seeds[i] for i in keep),
            self.values[keep],
            tuple(self.categories[i] for i in keep),
        )

    def to_dict(self) -> dict[str, list]:
        data: dict[str, list] = {
            "prompt_id": list(self.prompt_ids),
            "seed": list(self.seeds),
            "value": [float(v) for v in self.values],
        }
        if self.categories is not None:
            data["category"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SampleScores:
        """Strict: the three aligned lists, an optional `category` list, nothing else."""
        if not isinstance(data, dict):
            raise UserError(f"per-sample scores: expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_KEYS) - set(_OPTIONAL))
        if unknown:
            raise UserError(
                f"per-sample scores: unknown key {unknown[0]!r}; valid keys: {', '.join(_KEYS + _OPTIONAL)}"
            )
        missing = [key for key in _KEYS if key not in data]
        if missing:
            raise UserError(f"per-sample scores: missing key {missing[0]!r}")
        for key in (*_KEYS, *_OPTIONAL):
            if key in data and not isinstance(data[key], list):
                raise UserError(f"per-sample scores: key {key!r} must be a list")
        values = data["value"]
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(f"per-sample scores: key 'value' holds {value!r}, not a finite number")
        return cls(
            tuple(data["prompt_id"]),
            tuple(data["seed"]),
            np.asarray(values, dtype=float),
            data.get("category"),
        )

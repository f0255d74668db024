"""Strict configs: one pydantic base that refuses unknown keys, and one wording of its validation errors. Torch-free.

Every typed config of the toolkit (run config, study spec, shapes world, prepared data, data preparation,
objectives) derives from `Strict`, so an unknown key anywhere is an error that names the key (DESIGN.md, "Typed,
strict, serialized config"). `validation_problems` turns a pydantic `ValidationError` into its parts, and
`format_validation_error` into the one line a `UserError` carries:

    recipe.lr: Input should be greater than 0; recipe.lrr: unknown key
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

TOP_LEVEL = "(top level)"  # how a problem of the object as a whole (a model validator's) names its key
UNKNOWN_KEY = "unknown key"


class Strict(BaseModel):
    """Unknown keys are errors.

    A subclass that also wants `frozen=True` (configs as values) or `validate_assignment=True` sets only those in
    its own `model_config`; pydantic merges it with this one, so `extra="forbid"` stays.
    """

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Problem:
    """One entry of a ValidationError, worded for a user."""

    key: str  # dotted path of the offending key ("recipe.lr", "grid.seeds.1"); "" for the object as a whole
    message: str  # `unknown` for an unknown key, else pydantic's message without its "Value error, " prefix
    unknown: bool  # the key is not a field of the config (pydantic's extra_forbidden)
    input: Any  # the offending value

    def __str__(self) -> str:
        return f"{self.key or TOP_LEVEL}: {self.message}"


def validation_problems(
    error: ValidationError,
    *,
    within: str = "",
    union_tags: Mapping[str, Collection[str]] | None = None,
    unknown: str = UNKNOWN_KEY,
) -> list[Problem]:
    """The error's problems in pydantic's order.

    `within`: the validated object's own key in the user's file (`"base"` gives `base.recipe.lr`, and `base` for
    a problem of the object as a whole). `union_tags`: a discriminated-union field and its tags; pydantic puts the
    tag into the location (`executor.slurm.partition`), the key leaves it out (`executor.partition`). `unknown`:
    the message for an unknown key.
    """
    tags = union_tags or {}
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        parts = [part for i, part in enumerate(loc) if not (i and part in tags.get(loc[i - 1], ()))]
        key = ".".join([within, *parts] if within else parts)
        is_unknown = item["type"] == "extra_forbidden"
        message = unknown if is_unknown else item["msg"].removeprefix("Value error, ")
        problems.append(Problem(key, message, is_unknown, item.get("input")))
    return problems


def format_validation_error(
    error: ValidationError,
    *,
    within: str = "",
    union_tags: Mapping[str, Collection[str]] | None = None,
    unknown: str = UNKNOWN_KEY,
) -> str:
    """Every problem as `key: message`, joined by "; " (options as in `validation_problems`)."""
    problems = validation_problems(error, within=within, union_tags=union_tags, unknown=unknown)
    return "; ".join(map(str, problems))

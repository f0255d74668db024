"""The backbone zoo: names -> diffusers model configs, analytic accounting, and a common backbone adapter.

Torch-free at import: `Setting`, the name table and `account` need neither torch nor diffusers (the `t2iscale zoo`
table prints in well under a second). `build`, `load_backbone` and `Backbone` import torch and diffusers on first
use.
"""

from __future__ import annotations

import importlib

from t2iscale.zoo.accounting import Accounting, account
from t2iscale.zoo.names import FAMILIES, NAMED_ENTRIES, ZooEntry, family_of, list_names, model_config, resolve
from t2iscale.zoo.setting import PAPER_SETTING, Setting

_TORCH_EXPORTS = {"Backbone", "build", "load_backbone"}

__all__ = [
    "FAMILIES",
    "NAMED_ENTRIES",
    "PAPER_SETTING",
    "Accounting",
    "Backbone",
    "Setting",
    "ZooEntry",
    "account",
    "build",
    "family_of",
    "list_names",
    "load_backbone",
    "model_config",
    "resolve",
]


def __getattr__(name: str):
    if name in _TORCH_EXPORTS:
        return getattr(importlib.import_module("t2iscale.zoo.backbone"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

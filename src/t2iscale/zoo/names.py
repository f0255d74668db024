"""The zoo as a table: name grammar per family + the named entries of the paper. Torch-free.

A name resolves to a `ZooEntry` (family + the family function's options + the setting fields it fixes). Named
entries are the models of the paper (Li et al., CVPR 2024) and the released configs used as parity checks; any
other member of a family is written in its grammar (`sdxl-c16-td1_2`), so tiny shapes-world models and paper
models come from the same functions.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from t2iscale.errors import UserError
from t2iscale.zoo import families
from t2iscale.zoo.families import BackboneConfig
from t2iscale.zoo.setting import PAPER_SETTING, Setting

# A positive integer without leading zeros, so every parametric name has one spelling.
_INT = r"[1-9][0-9]*"


@dataclass(frozen=True)
class Family:
    name: str
    model_class: str  # the diffusers class its configs instantiate
    forms: tuple[str, ...]  # the name forms, for help and error messages
    pattern: re.Pattern
    make_config: Callable[..., BackboneConfig]
    tiny: str  # a small member for smoke runs and tests (tests cover every family through it)

    def parse(self, name: str) -> dict[str, int] | None:
        """Family-function options from a parametric name, or None when the name is not of this family."""
        match = self.pattern.fullmatch(name)
        if match is None:
            return None
        # Parts left out of a name keep the family function's defaults: `sdxl-td<b>` keeps SDXL's a=2.
        return {key: int(value) for key, value in match.groupdict().items() if value is not None}


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in [
        Family(
            "sd2",
            "UNet2DConditionModel",
            ("sd2", "sd2-c<C>"),
            re.compile(rf"sd2(?:-c(?P<channels>{_INT}))?"),
            families.sd2_unet,
            "sd2-c32",
        ),
        Family(
            "sdxl",
            "UNet2DConditionModel",
            ("sdxl", "sdxl-c<C>", "sdxl-td<b>", "sdxl-td<a>_<b>", "sdxl-c<C>-td<a>_<b>"),
            re.compile(rf"sdxl(?:-c(?P<channels>{_INT}))?(?:-td(?:(?P<td_a>{_INT})_)?(?P<td_b>{_INT}))?"),
            families.sdxl_unet,
            "sdxl-c16-td1_2",
        ),
        Family(
            "if-xl",
            "UNet2DConditionModel",
            ("if-xl", "if-xl-c<C>"),
            re.compile(rf"if-xl(?:-c(?P<channels>{_INT}))?"),
            families.if_xl_unet,
            "if-xl-c32",
        ),
        Family(
            "pixart",
            "PixArtTransformer2DModel",
            ("pixart-h<H>-d<D>",),
            re.compile(rf"pixart-h(?P<hidden>{_INT})-d(?P<depth>{_INT})"),
            families.pixart_transformer,
            "pixart-h32-d2",
        ),
        Family(
            "mmdit",
            "SD3Transformer2DModel",
            ("mmdit-d<D>",),
            re.compile(rf"mmdit-d(?P<depth>{_INT})"),
            families.mmdit_transformer,
            "mmdit-d2",
        ),
    ]
}


@dataclass(frozen=True)
class ZooEntry:
    """What a name means: a family, its function's options, and the setting fields the entry fixes."""

    name: str
    family: str
    options: dict[str, Any] = field(default_factory=dict)
    # Released configs fix the parts of the setting that shape the architecture (context width, input
    # channels); resolution and text length still follow the requested setting, so their compute is comparable.
    fixed_setting: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def setting_for(self, setting: Setting) -> Setting:
        return dataclasses.replace(setting, **self.fixed_setting) if self.fixed_setting else setting

    def model_config(self, setting: Setting = PAPER_SETTING) -> BackboneConfig:
        try:
            return FAMILIES[self.family].make_config(self.setting_for(setting), **self.options)
        except UserError as error:
            raise UserError(f"zoo name {self.name!r}: {error}") from None


def _entry(name: str, note: str = "", **fixed_setting: int) -> ZooEntry:
    """A named entry whose options come from its own name through the family grammar."""
    family, options = _parse(name)
    return ZooEntry(name, family, options, fixed_setting, note)


def _release(name: str, family: str, note: str, options: dict[str, Any], **fixed_setting: int) -> ZooEntry:
    return ZooEntry(name, family, options, fixed_setting, note)


def _parse(name: str) -> tuple[str, dict[str, int]]:
    for family in FAMILIES.values():
        options = family.parse(name)
        if options is not None:
            return family.name, options
    raise KeyError(name)


# Table order = the order of `t2iscale zoo`: the paper's UNets (Table 1, Sec. 4.1-4.2), its transformers
# (Sec. 4.3), the MMDiT ladder, then the released configs.
NAMED_ENTRIES: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in [
        _entry("sd2", "SD2 UNet in the paper setting"),
        _entry("sd2-c512"),
        _entry("if-xl-c512", "DeepFloyd IF-XL layout as trained in the paper"),
        _entry("if-xl", "IF-I-XL width, C=704"),
        _entry("sdxl", "SDXL UNet in the paper setting: C=320, TD 2/10"),
        _entry("sdxl-c128"),
        _entry("sdxl-c192"),
        _entry("sdxl-c384"),
        _entry("sdxl-td2"),
        _entry("sdxl-td4"),
        _entry("sdxl-td12"),
        _entry("sdxl-td14"),
        _entry("sdxl-td4_4", "the paper's efficient UNet: 45% fewer params, 28% less compute than SDXL"),
        _entry("sdxl-td4_8"),
        _entry("sdxl-td4_12"),
        _entry("sdxl-c384-td4_12"),
        _entry("pixart-h1152-d28", "PixArt-alpha XL/2 width and depth"),
        _entry("pixart-h1536-d28"),
        _entry("pixart-h1024-d28"),
        _entry("pixart-h1024-d56"),
        _entry("mmdit-d12"),
        _entry("mmdit-d18"),
        _entry("mmdit-d24", "SD3-medium size"),
        _entry("mmdit-d30"),
        _entry("mmdit-d38"),
        _release(
            "sd15-release",
            "sd2",
            "released SD1.5 UNet: 768-d CLIP-L context, 8 heads per level, conv projections",
            {"heads_per_level": 8, "linear_projection": False},
            text_dim=768,
            in_channels=4,
        ),
        _release("sd2-release", "sd2", "released SD2 UNet", {}, text_dim=1024, in_channels=4),
        _release(
            "sdxl-release",
            "sdxl",
            "released SDXL base UNet: 2048-d context + text_time add-embedding",
            {"add_embedding": True},
            text_dim=2048,
            in_channels=4,
        ),
        _release(
            "pixart-alpha-xl2-release",
            "pixart",
            "released PixArt-XL-2-1024-MS: T5 4096-d context, learned variance, size conditions",
            {"hidden": 1152, "depth": 28, "out_channels": 8, "additional_conditions": True},
            text_dim=4096,
            in_channels=4,
        ),
    ]
}


def list_names() -> list[str]:
    """The named entries, in table order."""
    return list(NAMED_ENTRIES)


def name_forms() -> list[str]:
    return [form for family in FAMILIES.values() for form in family.forms]


def resolve(name: str) -> ZooEntry:
    """The entry a zoo name stands for: a named entry, or a member of a family written in its grammar."""
    if not isinstance(name, str):
        raise UserError(f"a zoo name must be a string, got {name!r}")
    if name in NAMED_ENTRIES:
        return NAMED_ENTRIES[name]
    try:
        family, options = _parse(name)
    except KeyError:
        closest = difflib.get_close_matches(name, list_names(), n=3, cutoff=0.5)
        hint = f"; closest known names: {', '.join(closest)}" if closest else ""
        raise UserError(
            f"unknown zoo name {name!r}; valid forms: {', '.join(name_forms())} "
            f"and the released configs (*-release){hint} (list them with `t2iscale zoo`)"
        ) from None
    return ZooEntry(name, family, options)


def family_of(name: str) -> str:
    return resolve(name).family


def model_config(name: str, setting: Setting = PAPER_SETTING) -> BackboneConfig:
    """The diffusers config (`_class_name` + constructor arguments) that `name` builds in `setting`."""
    return resolve(name).model_config(setting)

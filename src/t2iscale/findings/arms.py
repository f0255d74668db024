"""A study's runs as configurations (training seeds pooled) and as the arms of a factor.

    study_configurations(study_dir, metric) -> StudyConfigurations  every configuration, its runs and records
    factor_strata(configurations, factor)   -> [Stratum]             the arms of `factor`, per level of the rest

A *configuration* is one grid point without its seed: (backbone, dataset size, caption policy). A factor's arms
are compared only between configurations that agree on every other grid axis, so a study that varies backbones
and captions compares captions once per backbone: each such group is a *stratum*.

Factors (`t2iscale.study.spec.FACTORS`):
- a grid axis (`backbone`, `dataset_size`, `caption_policy`): one arm per value, each one configuration;
- `layout`: one arm per zoo family (SD2, SDXL, IF layouts, paper Sec. 4.1); an arm holds every backbone of its
  family, a ladder read across backbones;
- `scaling`: two SDXL ladders that share a reference backbone (paper Sec. 4.2): `C` (channels varied, the
  reference's transformer depths kept) and `TD` (transformer depths varied, the reference's channels kept). The
  reference is the SDXL backbone with the most such neighbours; SDXL backbones on neither ladder are left out.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.findings.curves import load_curves
from t2iscale.scaling.arms import Arm, Configuration
from t2iscale.scaling.published import PAPER_FINDINGS
from t2iscale.study.results import (
    RunRecord,
    load_chance_level,
    load_runs,
    study_metrics,
    varying_axes,
)
from t2iscale.study.spec import FACTORS

# A configuration is a run without its seed.
CONFIGURATION_AXES = ("backbone", "dataset_size", "caption_policy")


@dataclass(frozen=True)
class StudyConfigurations:
    study_dir: Path
    metric: str
    configurations: list[Configuration]  # in grid order, evaluated ones only (their evaluated runs)
    records: dict[str, list[RunRecord]]  # configuration key -> its runs' records, evaluated or not
    unevaluated: dict[str, str]  # key -> label of configurations without any evaluation of the metric
    left_out: list[str]  # runs with no evaluation of the metric, as "label, seed s (status)"
    chance_level: float | None  # the metric's chance level on the study's prompts, when the scorer gives one

    def record(self, key: str) -> RunRecord:
        """The grid values shared by a configuration's runs (its first run's record)."""
        return self.records[key][0]


def configuration_label(record: RunRecord, varying: Sequence[str]) -> str:
    """The grid values that vary in this study, without the seed (the backbone when none does)."""
    parts = []
    for axis in varying:
        if axis == "seed":
            continue
        value = getattr(record, axis)
        parts.append(f"n={value}" if axis == "dataset_size" else str(value))
    return " · ".join(parts) if parts else record.backbone


def study_configurations(study_dir: str | Path, metric: str = "tifa") -> StudyConfigurations:
    """Every configuration of the study with its evaluated runs pooled (one Configuration each). Runs without
    an evaluation of the metric (pending, failed, still training) are left out and listed in `left_out`.
    UserError when the study has no evaluation of `metric` at all."""
    study_dir = Path(study_dir)
    records = load_runs(study_dir)
    curves = {curve.run_id: curve for curve in load_curves(study_dir, metric)}
    if not curves:
        present = study_metrics(study_dir)
        raise UserError(
            f"{study_dir}: no evaluation of metric {metric!r} "
            + (f"(its metrics: {', '.join(present)})" if present else "yet (no run has been evaluated)")
        )
    varying = varying_axes(records)
    grouped: dict[tuple, list[RunRecord]] = {}
    for record in records:
        grouped.setdefault(tuple(getattr(record, axis) for axis in CONFIGURATION_AXES), []).append(record)
    configurations, by_key, unevaluated, left_out = [], {}, {}, []
    for group in grouped.values():
        label = configuration_label(group[0], varying)
        key = "|".join(str(getattr(group[0], axis)) for axis in CONFIGURATION_AXES)
        by_key[key] = group
        evaluated = [curves[record.run_id] for record in group if record.run_id in curves]
        left_out += [f"{label}, seed {r.seed} ({r.status})" for r in group if r.run_id not in curves]
        if evaluated:
            configurations.append(Configuration(key, label, tuple(evaluated)))
        else:
            unevaluated[key] = label
    return StudyConfigurations(
        study_dir, metric, configurations, by_key, unevaluated, left_out, load_chance_level(study_dir, metric)
    )


# -- factors ------------------------------------------------------------------------------------------------


def _sdxl_shape(backbone: str) -> tuple[int, int, int] | None:
    """(C, TD a, TD b) of an SDXL-family backbone with the family defaults filled in; None for other families."""
    from t2iscale.zoo import resolve
    from t2iscale.zoo.families import sdxl_unet

    entry = resolve(backbone)
    if entry.family != "sdxl" or entry.fixed_setting:
        return None
    defaults = {name: p.default for name, p in inspect.signature(sdxl_unet).parameters.items()}
    options = {**defaults, **entry.options}
    return options["channels"], options["td_a"], options["td_b"]


def scaling_ladders(backbones: Sequence[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    """({"TD": [...], "C": [...]}, the reference backbone, the SDXL backbones on neither ladder).

    Raises UserError when the backbones hold no two ladders of 2+ backbones through one reference."""
    shapes = {name: shape for name in dict.fromkeys(backbones) if (shape := _sdxl_shape(name)) is not None}

    def ladders(reference: str) -> dict[str, list[str]]:
        c, a, b = shapes[reference]
        return {
            "TD": [name for name, shape in shapes.items() if shape[0] == c],
            "C": [name for name, shape in shapes.items() if shape[1:] == (a, b)],
        }

    if shapes:
        reference = max(shapes, key=lambda name: sum(len(members) for members in ladders(name).values()))
        found = ladders(reference)
        if all(len(members) >= 2 for members in found.values()):
            on_ladders = set(found["TD"]) | set(found["C"])
            return found, reference, [name for name in shapes if name not in on_ladders]
    raise UserError(
        "factor 'scaling' needs two SDXL ladders through one reference backbone: one varying the channels C at "
        "the reference's transformer depths, one varying the depths TD at its C (e.g. sdxl-c16, sdxl-c32, "
        f"sdxl-c32-td4_4); this study's SDXL backbones: {', '.join(shapes) or 'none'}"
    )


def _levels(factor: str, record: RunRecord, ladders: dict[str, list[str]] | None) -> list[str]:
    """The factor's level(s) of one run: a ladder's reference backbone belongs to both scaling arms."""
    if factor == "layout":
        return [record.family]
    if factor == "scaling":
        return [level for level, members in ladders.items() if record.backbone in members]
    return [str(getattr(record, factor))]


@dataclass
class Stratum:
    """The arms of a factor among configurations that agree on every other grid axis."""

    fixed: dict[str, object]  # the other varying grid axes and their values here
    arms: list[Arm] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # configurations on no arm (scaling: off both ladders)

    def pairs(self, factor: str) -> list[tuple[Arm, Arm]]:
        """Every pair of arms, oriented so A is the arm the paper expects to win (or the larger one)."""
        finding = PAPER_FINDINGS.get(factor)
        pairs = []
        for i, first in enumerate(self.arms):
            for second in self.arms[i + 1 :]:
                expects = finding.expects(first.name, second.name) if finding else None
                if expects is None:
                    expects = 1 if _size(first) >= _size(second) else -1
                pairs.append((first, second) if expects > 0 else (second, first))
        return pairs


def _size(arm: Arm) -> float:
    """Orientation for pairs the paper says nothing of: larger data, else more parameters first."""
    try:
        return float(arm.name)
    except ValueError:
        return float(max(c.params or 0 for c in arm.configurations))


def factor_strata(study: StudyConfigurations, factor: str) -> list[Stratum]:
    """The factor's arms per stratum. UserError for an unknown factor, one with fewer than two levels, or
    an arm holding a configuration none of whose runs has an evaluation of the metric."""
    if factor not in FACTORS:
        raise UserError(f"unknown factor {factor!r}; valid factors: {', '.join(FACTORS)}")
    all_records = [record for records in study.records.values() for record in records]
    ladders = None
    if factor == "scaling":
        ladders, _, _ = scaling_ladders([record.backbone for record in all_records])
    varying = [axis for axis in varying_axes(all_records) if axis in CONFIGURATION_AXES]
    inside_arm = ("backbone",) if factor in ("layout", "scaling") else (factor,)
    fixed_axes = [axis for axis in varying if axis not in inside_arm]
    evaluated = {configuration.key: configuration for configuration in study.configurations}
    strata: dict[tuple, Stratum] = {}
    members: dict[tuple, dict[str, list[Configuration]]] = {}
    sizes: dict[tuple, int] = {}  # (stratum, level) -> configurations, evaluated or not
    for key in study.records:
        record = study.record(key)
        stratum_key = tuple(getattr(record, axis) for axis in fixed_axes)
        stratum = strata.setdefault(stratum_key, Stratum(dict(zip(fixed_axes, stratum_key))))
        levels = _levels(factor, record, ladders)
        if not levels:
            stratum.left_out.append(evaluated[key].label if key in evaluated else study.unevaluated[key])
            continue
        for level in levels:
            # an unevaluated configuration stays out of its arm (listed in the study's left_out)
            configs = members.setdefault(stratum_key, {}).setdefault(level, [])
            sizes[stratum_key, level] = sizes.get((stratum_key, level), 0) + 1
            if key in evaluated:
                configs.append(evaluated[key])
    for stratum_key, stratum in strata.items():
        levels_here = members.get(stratum_key, {})
        if factor == "scaling" and any(sizes[stratum_key, level] < 2 for level in levels_here):
            # a ladder of one (where a stratum holds only the shared reference) is no ladder: nothing to compare
            continue
        for level, configs in levels_here.items():
            if not configs:
                where = ", ".join(f"{axis} = {value}" for axis, value in stratum.fixed.items())
                raise UserError(
                    f"arm {level!r} of factor {factor!r}{' where ' + where if where else ''} has no run with an "
                    f"evaluation of {study.metric!r} (wait for its runs, or `t2iscale study sync`)"
                )
        stratum.arms = [Arm(level, tuple(configs)) for level, configs in levels_here.items()]
    if all(len(stratum.arms) < 2 for stratum in strata.values()):
        levels = sorted({arm.name for stratum in strata.values() for arm in stratum.arms})
        comparable = [f for f in FACTORS if f != factor and _has_two_levels(all_records, f)]
        raise UserError(
            f"factor {factor!r} has one level in this study ({', '.join(levels)}): nothing to compare; "
            f"factors with 2+ levels here: {', '.join(comparable) or 'none'}"
        )
    return [stratum for stratum in strata.values() if len(stratum.arms) >= 2]


def _has_two_levels(records: list[RunRecord], factor: str) -> bool:
    if factor == "scaling":
        try:
            scaling_ladders([record.backbone for record in records])
        except UserError:
            return False
        return True
    key = "family" if factor == "layout" else factor
    return len({getattr(record, key) for record in records}) > 1


# -- the configurations a law is fitted on --------------------------------------------------------------------

# The grid axis along which each law's X moves: N and C move with the backbone (C also with the steps, within a
# run), D with the training-set size.
LAW_FACTOR = {"compute": "backbone", "params": "backbone", "data": "dataset_size"}


@dataclass(frozen=True)
class LawScope:
    """The configurations a law is fitted on: they differ only along the law's own grid axis.

    A study with several grids (`[[grids]]`, e.g. the `findings` preset) varies captions and data on one backbone
    and backbones on one dataset; pooling them into S = a·N^b would read a caption policy's effect as one of size.
    """

    configurations: list[Configuration]
    fixed: dict[str, object]  # the other varying grid axes and their values inside the scope
    left_out: list[str]  # labels of evaluated configurations outside it

    def text(self) -> str | None:
        """'dataset_size = 60000, caption_policy = mix', or None when no other grid axis varies."""
        if not self.fixed:
            return None
        return ", ".join(f"{axis} = {value}" for axis, value in self.fixed.items())


def parse_where(items: Sequence[str]) -> dict[str, str]:
    """`["caption_policy=alt", ...]` -> {"caption_policy": "alt"}; UserError naming a bad item or axis."""
    where = {}
    for item in items:
        axis, sep, value = item.partition("=")
        axis, value = axis.strip(), value.strip()
        if not sep or not value:
            raise UserError(f"--where {item!r}: expected AXIS=VALUE, e.g. caption_policy=mix")
        if axis not in CONFIGURATION_AXES:
            raise UserError(f"--where {item!r}: unknown axis {axis!r}; axes: {', '.join(CONFIGURATION_AXES)}")
        where[axis] = value
    return where


def law_scope(study: StudyConfigurations, axis: str, where: dict[str, str] | None = None) -> LawScope:
    """The evaluated configurations a law on `axis` ("compute", "params", "data") is fitted on.

    Configurations are grouped by the other varying grid axes (for N and C: dataset size and caption policy; for
    D: backbone and caption policy); the law takes the group with the most configurations (ties: the first in
    grid order), or the one `where` names ({"caption_policy": "mix"}, values compared as text). A study with one
    grid, whose other axes do not vary, keeps every configuration, as does a params or data law whose own axis
    the study does not vary. UserError when `where` matches no group or
    names the law's own axis."""
    factor = LAW_FACTOR[axis]
    where = dict(where or {})
    if factor in where:
        raise UserError(f"--where {factor}=...: {factor} is what the {axis} law varies; fix another axis")
    all_records = [record for records in study.records.values() for record in records]
    varying = varying_axes(all_records)
    # A law of final values over an axis the study does not vary has nothing to keep apart (and no law): it is
    # not scoped. The compute law still is, as C also moves along training within each configuration.
    fixed_axes = (
        []
        if axis != "compute" and factor not in varying
        else [a for a in varying if a in CONFIGURATION_AXES and a != factor]
    )
    groups: dict[tuple, list[Configuration]] = {}
    for configuration in study.configurations:
        record = study.record(configuration.key)
        groups.setdefault(tuple(getattr(record, a) for a in fixed_axes), []).append(configuration)

    def matches(values: tuple) -> bool:
        named = dict(zip(fixed_axes, values))
        return all(a in named and str(named[a]) == value for a, value in where.items())

    candidates = {values: members for values, members in groups.items() if matches(values)}
    if not candidates:
        asked = ", ".join(f"{a} = {v}" for a, v in where.items())
        if not fixed_axes:  # one group: only the law's own axis varies
            values = {a: sorted({str(getattr(r, a)) for r in all_records}) for a in where}
            held = "; ".join(f"{a} is {', '.join(v)} in every run" for a, v in values.items())
            raise UserError(f"no evaluated configurations where {asked}: {held} (nothing else to select)")
        have = "; ".join(", ".join(f"{a} = {v}" for a, v in zip(fixed_axes, values)) for values in groups)
        raise UserError(f"no evaluated configurations where {asked} (the study's groups: {have})")
    chosen = max(candidates, key=lambda values: len(candidates[values]))  # max keeps the first of a tie
    inside = {c.key for c in candidates[chosen]}
    return LawScope(
        configurations=candidates[chosen],
        fixed=dict(zip(fixed_axes, chosen)),
        left_out=[c.label for c in study.configurations if c.key not in inside],
    )

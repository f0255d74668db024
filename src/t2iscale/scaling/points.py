"""Curves and scaling points: the torch-free data model of a study's results, and its JSON / CSV files.

A study evaluates every run every N steps; one run and one metric give a `Curve`: per evaluation the step,
images seen, training FLOPs and the metric value (e.g. TIFA, higher is better), plus the run's parameters N,
GMACs and its training set's image-noun pairs D. The study runner's SQLite loader returns these same
objects, and `load_points` reads them from a file, so the fits never care where results came from.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.samples import SampleScores


@dataclass(frozen=True)
class Axis:
    """One scaling axis: X in S = f(X)."""

    name: str
    symbol: str  # the paper's symbol
    description: str


# The paper's three scaling functions (Sec. 6): alignment S against training compute C, model size N,
# and data D counted in image-noun pairs.
AXES: dict[str, Axis] = {
    "compute": Axis("compute", "C", "training FLOPs, every evaluation of every configuration"),
    "params": Axis("params", "N", "parameters, each configuration's final evaluation"),
    "data": Axis("data", "D", "training-set image-noun pairs, each configuration's final evaluation"),
}

# What D counts on the data axis. The paper's is image-noun pairs (Sec. 5); data prepared without a noun tagger has
# only its size in images, and `images_seen` (training images shown, repeats included) is the budget's view of it.
DATA_MEASURES: dict[str, tuple[str, str]] = {
    "noun_pairs": ("dataset_noun_pairs", "training-set image-noun pairs"),
    "images": ("dataset_images", "training-set images (the dataset size)"),
    "images_seen": ("images_seen", "training images seen (repeats included)"),
}
DEFAULT_METRIC = "tifa"
JSON_FORMAT_VERSION = 1

# Keys of a curve in a JSON file: required ones, then ones with a default.
_REQUIRED_KEYS = (
    "run_id",
    "params",
    "gmacs",
    "dataset_noun_pairs",
    "steps",
    "images_seen",
    "train_flops",
    "values",
)
_OPTIONAL_KEYS = ("label", "metric", "category", "samples", "n_seeds", "dataset_images")

# Columns of a long-format CSV file (one row per evaluation); `category.<name>` columns add breakdowns.
_CSV_REQUIRED = ("run_id", "step", "images_seen", "train_flops", "value")
_CSV_RUN_LEVEL = ("label", "metric", "params", "gmacs", "dataset_noun_pairs")
_CSV_CATEGORY_PREFIX = "category."


# numbers.Integral / Real also admit numpy scalars, which a loader may hand over; bools are not numbers here.
def _as_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"key {key!r}: expected an integer, got {value!r}")
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        raise UserError(f"key {key!r}: expected an integer, got {value!r}")
    return int(value)


def _as_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"key {key!r}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise UserError(f"key {key!r}: expected a finite number, got {value!r}")
    return value


def _as_sequence(value: Any, key: str) -> Sequence:
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value.tolist()
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Sequence):
        raise UserError(f"key {key!r}: expected a list, got {type(value).__name__}")
    return value


def _check_non_decreasing(values: Sequence[float], key: str, steps: Sequence[int]) -> None:
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            raise UserError(f"key {key!r}: decreases at step {steps[i]} ({values[i - 1]!r} -> {values[i]!r})")


@dataclass(frozen=True)
class Curve:
    """One run's metric along training.

    `params` (N), `gmacs` and `dataset_noun_pairs` (D) may be None when unknown; only the fits that need
    them complain. `steps`, `images_seen`, `train_flops`, `values` and every `category` list are aligned:
    entry i is the evaluation at `steps[i]`. `category` holds per-category breakdowns of the metric (e.g.
    GenEval's counting, colors, position), which the study may record next to the overall value. `samples`, when
    known, holds per evaluation its per-(prompt, eval seed) scores (`SampleScores`, None for an evaluation
    without them): what intervals and paired comparisons are computed from. The CSV format does not carry them.
    A curve that averages the replicate runs of one configuration (`t2iscale.scaling.arms`) records their
    number in `n_seeds`.
    """

    run_id: str
    label: str
    params: int | None
    gmacs: float | None
    dataset_noun_pairs: int | None
    steps: tuple[int, ...]
    images_seen: tuple[int, ...]
    train_flops: tuple[float, ...]
    values: tuple[float, ...]
    metric: str = DEFAULT_METRIC
    category: dict[str, tuple[float, ...]] = field(default_factory=dict)
    samples: tuple[SampleScores | None, ...] | None = None
    n_seeds: int = 1  # training seeds whose runs this curve averages (1: one run)
    dataset_images: int | None = None  # the training set's size in images, when known (a D for the data axis)

    def __post_init__(self):
        try:
            self._validate()
        except UserError as error:
            raise UserError(f"curve {self.run_id!r}: {error}") from None

    def _validate(self) -> None:
        # Normalise every field to plain Python types (a loader may hand over numpy arrays or sqlite rows).
        set_ = object.__setattr__
        if not isinstance(self.run_id, str) or not self.run_id:
            raise UserError(f"key 'run_id': expected a non-empty string, got {self.run_id!r}")
        for key in ("label", "metric"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise UserError(f"key {key!r}: expected a non-empty string, got {getattr(self, key)!r}")
        for key, convert in (
            ("params", _as_int),
            ("gmacs", _as_float),
            ("dataset_noun_pairs", _as_int),
            ("dataset_images", _as_int),
        ):
            value = getattr(self, key)
            if value is not None:
                value = convert(value, key)
                if value <= 0:
                    raise UserError(f"key {key!r}: must be positive, got {value!r}")
                set_(self, key, value)

        steps = tuple(_as_int(v, "steps") for v in _as_sequence(self.steps, "steps"))
        if not steps:
            raise UserError("key 'steps': a curve needs at least one evaluation")
        n = len(steps)
        columns = {
            "images_seen": tuple(
                _as_int(v, "images_seen") for v in _as_sequence(self.images_seen, "images_seen")
            ),
            "train_flops": tuple(
                _as_float(v, "train_flops") for v in _as_sequence(self.train_flops, "train_flops")
            ),
            "values": tuple(_as_float(v, "values") for v in _as_sequence(self.values, "values")),
        }
        for key, column in columns.items():
            if len(column) != n:
                raise UserError(f"key {key!r}: has {len(column)} entries but 'steps' has {n}")
        if steps[0] < 0 or any(b <= a for a, b in zip(steps, steps[1:])):
            raise UserError(f"key 'steps': must be non-negative and strictly increasing, got {list(steps)}")
        for key in ("images_seen", "train_flops"):
            if min(columns[key]) < 0:
                raise UserError(f"key {key!r}: must be non-negative")
            _check_non_decreasing(columns[key], key, steps)
        set_(self, "steps", steps)
        for key, column in columns.items():
            set_(self, key, column)

        if not isinstance(self.category, dict):
            raise UserError(
                f"key 'category': expected a mapping of name -> list, got {type(self.category).__name__}"
            )
        category = {}
        for name, values in self.category.items():
            key = f"category.{name}"
            if not isinstance(name, str) or not name:
                raise UserError(f"key 'category': category names must be non-empty strings, got {name!r}")
            column = tuple(_as_float(v, key) for v in _as_sequence(values, key))
            if len(column) != n:
                raise UserError(f"key {key!r}: has {len(column)} entries but 'steps' has {n}")
            category[name] = column
        set_(self, "category", category)

        n_seeds = _as_int(self.n_seeds, "n_seeds")
        if n_seeds < 1:
            raise UserError(f"key 'n_seeds': must be at least 1, got {n_seeds}")
        set_(self, "n_seeds", n_seeds)
        if self.samples is not None:
            samples = tuple(
                entry if entry is None or isinstance(entry, SampleScores) else SampleScores.from_dict(entry)
                for entry in _as_sequence(self.samples, "samples")
            )
            if len(samples) != n:
                raise UserError(f"key 'samples': has {len(samples)} entries but 'steps' has {n}")
            set_(self, "samples", samples if any(entry is not None for entry in samples) else None)

    def samples_at(self, index: int) -> SampleScores | None:
        """The per-sample scores of evaluation `index` (None when they were not kept)."""
        return None if self.samples is None else self.samples[index]

    @property
    def final_value(self) -> float:
        return self.values[-1]

    @property
    def final_step(self) -> int:
        return self.steps[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "label": self.label,
            "metric": self.metric,
            "params": self.params,
            "gmacs": self.gmacs,
            "dataset_noun_pairs": self.dataset_noun_pairs,
            "steps": list(self.steps),
            "images_seen": list(self.images_seen),
            "train_flops": list(self.train_flops),
            "values": list(self.values),
            "category": {name: list(values) for name, values in self.category.items()},
            **({} if self.n_seeds == 1 else {"n_seeds": self.n_seeds}),
            **({} if self.dataset_images is None else {"dataset_images": self.dataset_images}),
            **(
                {}
                if self.samples is None
                else {"samples": [None if entry is None else entry.to_dict() for entry in self.samples]}
            ),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Curve:
        """Strict: every required key present, no unknown key."""
        if not isinstance(data, dict):
            raise UserError(
                f"expected an object with keys {', '.join(_REQUIRED_KEYS)}, got {type(data).__name__}"
            )
        unknown = sorted(set(data) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
        if unknown:
            valid = ", ".join(_REQUIRED_KEYS + _OPTIONAL_KEYS)
            raise UserError(f"unknown key {unknown[0]!r}; valid keys: {valid}")
        missing = [key for key in _REQUIRED_KEYS if key not in data]
        if missing:
            raise UserError(f"missing key {missing[0]!r}")
        run_id = data["run_id"]
        return cls(
            run_id=run_id,
            label=data.get("label", run_id),
            params=data["params"],
            gmacs=data["gmacs"],
            dataset_noun_pairs=data["dataset_noun_pairs"],
            steps=data["steps"],
            images_seen=data["images_seen"],
            train_flops=data["train_flops"],
            values=data["values"],
            metric=data.get("metric", DEFAULT_METRIC),
            category=data.get("category", {}),
            samples=data.get("samples"),
            n_seeds=data.get("n_seeds", 1),
            dataset_images=data.get("dataset_images"),
        )


def curves_to_json(curves: Iterable[Curve]) -> dict[str, Any]:
    return {"version": JSON_FORMAT_VERSION, "curves": [curve.to_dict() for curve in curves]}


def curves_from_json(data: Any, source: str = "<json>") -> list[Curve]:
    """Curves from a parsed JSON document `{"version": 1, "curves": [...]}`; errors name `source`."""
    if not isinstance(data, dict) or "curves" not in data:
        raise UserError(f"{source}: expected an object {{'version': 1, 'curves': [...]}}")
    unknown = sorted(set(data) - {"version", "curves"})
    if unknown:
        raise UserError(f"{source}: unknown key {unknown[0]!r}; valid keys: version, curves")
    if data.get("version", JSON_FORMAT_VERSION) != JSON_FORMAT_VERSION:
        raise UserError(
            f"{source}: key 'version': unsupported {data['version']!r} (expected {JSON_FORMAT_VERSION})"
        )
    if not isinstance(data["curves"], list):
        raise UserError(f"{source}: key 'curves': expected a list")
    curves = []
    for index, item in enumerate(data["curves"]):
        try:
            curves.append(Curve.from_dict(item))
        except UserError as error:
            raise UserError(f"{source}: curves[{index}]: {error}") from None
    _check_unique(curves, source)
    return curves


def _check_unique(curves: Sequence[Curve], source: str) -> None:
    seen = set()
    for curve in curves:
        key = (curve.run_id, curve.metric)
        if key in seen:
            raise UserError(f"{source}: run {curve.run_id!r} has two curves for metric {curve.metric!r}")
        seen.add(key)


def _parse_cell(text: str, key: str, integer: bool) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"column {key!r}: expected a number, got {text!r}") from None
    return _as_int(value, key) if integer else _as_float(value, key)


def _curves_from_csv(path: Path) -> list[Curve]:
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        missing = [column for column in _CSV_REQUIRED if column not in columns]
        if missing:
            raise UserError(f"{path}: line 1: missing column {missing[0]!r}")
        known = set(_CSV_REQUIRED) | set(_CSV_RUN_LEVEL)
        unknown = [c for c in columns if c not in known and not c.startswith(_CSV_CATEGORY_PREFIX)]
        if unknown:
            valid = ", ".join(_CSV_REQUIRED + _CSV_RUN_LEVEL) + f", {_CSV_CATEGORY_PREFIX}<name>"
            raise UserError(f"{path}: line 1: unknown column {unknown[0]!r}; valid columns: {valid}")
        categories = [c[len(_CSV_CATEGORY_PREFIX) :] for c in columns if c.startswith(_CSV_CATEGORY_PREFIX)]

        # (run_id, metric) -> run-level fields (with the line that set them) and rows
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for row in reader:
            line = reader.line_num
            try:
                if None in row or any(row[c] is None for c in columns):
                    raise UserError(f"expected {len(columns)} cells like the header")
                run_id = row["run_id"].strip()
                if not run_id:
                    raise UserError("column 'run_id': empty")
                metric = (row.get("metric") or "").strip() or DEFAULT_METRIC
                run_fields = {
                    "label": (row.get("label") or "").strip() or run_id,
                    "params": _optional_cell(row, "params", integer=True),
                    "gmacs": _optional_cell(row, "gmacs", integer=False),
                    "dataset_noun_pairs": _optional_cell(row, "dataset_noun_pairs", integer=True),
                }
                group = groups.setdefault((run_id, metric), {"fields": run_fields, "line": line, "rows": []})
                for key, value in run_fields.items():
                    if value != group["fields"][key]:
                        raise UserError(
                            f"column {key!r}: {value!r} differs from {group['fields'][key]!r} on line "
                            f"{group['line']} for the same run {run_id!r}"
                        )
                step = _parse_cell(row["step"], "step", integer=True)
                if any(step == other["step"] for other in group["rows"]):
                    raise UserError(f"run {run_id!r} metric {metric!r} has step {step} twice")
                group["rows"].append(
                    {
                        "line": line,
                        "step": step,
                        "images_seen": _parse_cell(row["images_seen"], "images_seen", integer=True),
                        "train_flops": _parse_cell(row["train_flops"], "train_flops", integer=False),
                        "value": _parse_cell(row["value"], "value", integer=False),
                        "category": {name: row[_CSV_CATEGORY_PREFIX + name].strip() for name in categories},
                    }
                )
            except UserError as error:
                raise UserError(f"{path}: line {line}: {error}") from None

    curves = []
    for (run_id, metric), group in groups.items():
        rows = sorted(group["rows"], key=lambda r: r["step"])
        category = {}
        for name in categories:
            cells = [r["category"][name] for r in rows]
            if not any(cells):
                continue  # this run has no breakdown for that category
            key = _CSV_CATEGORY_PREFIX + name
            values = []
            for r, cell in zip(rows, cells):
                try:
                    if not cell:
                        raise UserError(f"column {key!r}: empty, but other rows of run {run_id!r} have it")
                    values.append(_parse_cell(cell, key, integer=False))
                except UserError as error:
                    raise UserError(f"{path}: line {r['line']}: {error}") from None
            category[name] = values
        try:
            curves.append(
                Curve(
                    run_id=run_id,
                    metric=metric,
                    steps=[r["step"] for r in rows],
                    images_seen=[r["images_seen"] for r in rows],
                    train_flops=[r["train_flops"] for r in rows],
                    values=[r["value"] for r in rows],
                    category=category,
                    **group["fields"],
                )
            )
        except UserError as error:
            raise UserError(f"{path}: run starting on line {group['line']}: {error}") from None
    return curves


def _optional_cell(row: dict[str, str], key: str, integer: bool) -> int | float | None:
    text = (row.get(key) or "").strip()
    return None if not text else _parse_cell(text, key, integer)


def _curves_to_csv(curves: Sequence[Curve], path: Path) -> None:
    categories = sorted({name for curve in curves for name in curve.category})
    header = list(_CSV_REQUIRED[:1]) + list(_CSV_RUN_LEVEL) + list(_CSV_REQUIRED[1:])
    header += [_CSV_CATEGORY_PREFIX + name for name in categories]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for curve in curves:
            run_level = [curve.label, curve.metric]
            run_level += [
                "" if v is None else repr(v) for v in (curve.params, curve.gmacs, curve.dataset_noun_pairs)
            ]
            for i, step in enumerate(curve.steps):
                row = [curve.run_id, *run_level, step, curve.images_seen[i]]
                row += [repr(curve.train_flops[i]), repr(curve.values[i])]
                row += [
                    repr(curve.category[name][i]) if name in curve.category else "" for name in categories
                ]
                writer.writerow(row)


def load_points(path: str | Path, metric: str | None = None) -> list[Curve]:
    """Read curves from a `.json` (`curves_to_json` layout) or long-format `.csv` file.

    With `metric`, keep only that metric's curves (an error lists the metrics the file has).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such points file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise UserError(f"{path}: line {error.lineno}: invalid JSON: {error.msg}") from None
        curves = curves_from_json(data, source=str(path))
    elif suffix == ".csv":
        curves = _curves_from_csv(path)
    else:
        raise UserError(f"{path}: unknown points file type {suffix!r}; use .json or .csv")
    if not curves:
        raise UserError(f"{path}: holds no curves")
    if metric is not None:
        kept = [curve for curve in curves if curve.metric == metric]
        if not kept:
            present = ", ".join(sorted({curve.metric for curve in curves}))
            raise UserError(f"{path}: no curves for metric {metric!r}; metrics in the file: {present}")
        curves = kept
    return curves


def save_points(path: str | Path, curves: Sequence[Curve]) -> Path:
    """Write curves as `.json` or long-format `.csv` (by the suffix); `load_points` reads either back."""
    path = Path(path)
    _check_unique(curves, str(path))
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(curves_to_json(curves), indent=1) + "\n")
    elif suffix == ".csv":
        _curves_to_csv(curves, path)
    else:
        raise UserError(f"{path}: unknown points file type {suffix!r}; use .json or .csv")
    return path


@dataclass(frozen=True)
class ScalingPoint:
    """One (X, S) point with where it came from: run, step."""

    run_id: str
    label: str
    step: int
    x: float
    value: float


def resolve_data_measure(curves: Sequence[Curve], measure: str | None = None) -> str:
    """Which D the data axis uses (`DATA_MEASURES`): `measure` as given, or the first of image-noun pairs and the
    dataset size in images that every curve has (None: "auto")."""
    if measure is not None and measure != "auto":
        if measure not in DATA_MEASURES:
            raise UserError(f"unknown data measure {measure!r}; valid: auto, {', '.join(DATA_MEASURES)}")
        return measure
    for candidate in ("noun_pairs", "images"):
        if curves and all(getattr(curve, DATA_MEASURES[candidate][0]) is not None for curve in curves):
            return candidate
    return "noun_pairs"  # the paper's D; `scaling_points` names the run that lacks it


def data_axis(measure: str) -> Axis:
    """The data axis with D counted as `measure` (its description says which)."""
    return Axis("data", "D", f"{DATA_MEASURES[measure][1]}, each configuration's final evaluation")


def scaling_points(curves: Sequence[Curve], axis: str, data_measure: str | None = None) -> list[ScalingPoint]:
    """The (X, S) points a fit on `axis` ("compute", "params" or "data") uses, before any frontier.

    compute: every evaluation of every run, X = training FLOPs so far. Evaluations at zero FLOPs (the
        untrained model at step 0) are left out: C^b is not defined there and they say nothing about scaling.
    params / data: one point per run, its final evaluation, X = N or D. (The paper compares runs at the end
        of training; runs of a study share one budget, so "final" is comparable across runs.) D is counted as
        `data_measure` (`resolve_data_measure`: image-noun pairs where every run has them, else dataset images).
    """
    if axis not in AXES:
        raise UserError(f"unknown scaling axis {axis!r}; valid axes: {', '.join(AXES)}")
    points = []
    if axis == "compute":
        for curve in curves:
            for step, flops, value in zip(curve.steps, curve.train_flops, curve.values):
                if flops > 0:
                    points.append(ScalingPoint(curve.run_id, curve.label, step, flops, value))
        return points
    measure = resolve_data_measure(curves, data_measure) if axis == "data" else None
    for curve in curves:
        if axis == "params":
            key, x = "params", curve.params
        else:
            key = DATA_MEASURES[measure][0]
            x = curve.images_seen[-1] if measure == "images_seen" else getattr(curve, key)
        if x is None:
            hint = ""
            if key == "dataset_noun_pairs":
                hint = (
                    " (prepared data counts them with `t2iscale data prepare --noun-tagger DIR`; or fit on the "
                    "dataset size: --data-measure images)"
                )
            raise UserError(f"run {curve.run_id!r} has no {key!r}, which a fit on --x {axis} needs{hint}")
        points.append(ScalingPoint(curve.run_id, curve.label, curve.final_step, float(x), curve.final_value))
    return points

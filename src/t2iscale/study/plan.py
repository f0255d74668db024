"""Expand a study's grid into runs with stable ids, resolved configs, and their size accounting.

A run id is a readable slug plus a short hash of the run's resolved config (without run_dir and the keys that only
set the speed, `SPEED_ONLY_KEYS`), e.g. `sdxl-c16-td1_2.n5000.mix.s0-3f2a9c`: the slug says which grid point it is,
the hash that the recipe is the same, so a changed recipe can never be mistaken for finished work, while a study
re-run with another compile mode or prefetch depth still finds its finished runs.

Torch-free: prepared real data is accounted from its `prepared.json` (latent shape, text width).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from pydantic import ValidationError

from t2iscale.data.prepared_meta import META_FILE
from t2iscale.errors import UserError
from t2iscale.strict import format_validation_error
from t2iscale.study.spec import StudySpec, parse_spec
from t2iscale.train.config import DataConfig, ModelConfig, TrainConfig, run_identity, run_setting
from t2iscale.zoo.accounting import Accounting, account
from t2iscale.zoo.setting import PAPER_SETTING

HASH_CHARS = 6
RUNS_FOLDER = "runs"
_PLACEHOLDER_RUN_DIR = "<study_dir>/runs/<run_id>"


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    position: int  # grid order
    config_hash: str
    config: dict  # the resolved TrainConfig as JSON, without run_dir

    @property
    def backbone(self) -> str:
        return self.config["model"]["backbone"]

    @property
    def dataset_size(self) -> int | None:
        return self.config["data"]["size"]

    @property
    def caption_policy(self) -> str:
        return self.config["data"]["caption_policy"]

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def total_steps(self) -> int:
        return self.config["budget"]["total_steps"]

    @property
    def global_batch(self) -> int:
        return self.config["recipe"]["global_batch"]

    @property
    def relative_dir(self) -> str:
        """Where the run lives inside the study folder (the database stores this, so a study can move)."""
        return f"{RUNS_FOLDER}/{self.run_id}"

    def run_dir(self, study_dir: str | Path) -> Path:
        return Path(study_dir).absolute() / self.relative_dir

    def train_config(self, study_dir: str | Path) -> TrainConfig:
        """The run's TrainConfig, its run_dir an absolute path (jobs may start in another working folder)."""
        return TrainConfig.model_validate({**self.config, "run_dir": str(self.run_dir(study_dir))})


def size_slug(size: int | None) -> str:
    if size is None:
        return "nall"
    return f"n{size // 1_000_000}M" if size >= 1_000_000 and size % 1_000_000 == 0 else f"n{size}"


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]


def _grid_axes(spec: StudySpec, grid) -> tuple[list, list, list, list]:
    base = spec.base

    def base_value(section: str | None, key: str, default):
        table = base if section is None else base.get(section, {})
        return table.get(key, default) if isinstance(table, dict) else default

    return (
        grid.backbones or [base_value("model", "backbone", ModelConfig().backbone)],
        grid.dataset_sizes or [base_value("data", "size", None)],
        grid.caption_policies
        or [base_value("data", "caption_policy", DataConfig.model_fields["caption_policy"].default)],
        grid.seeds or [base_value(None, "seed", 0)],
    )


def expand_grid(spec: StudySpec, source: str = "(spec)") -> list[PlannedRun]:
    """Every grid point as a run, in grid order (backbone, dataset size, caption policy, seed); with several
    grids, grid after grid, a run already planned by an earlier grid (the same id) kept once."""
    runs: list[PlannedRun] = []
    seen: set[str] = set()
    points = [point for grid in spec.each_grid() for point in product(*_grid_axes(spec, grid))]
    for backbone, size, policy, seed in points:
        position = len(runs)
        raw = json.loads(json.dumps(spec.base))  # deep copy
        raw.setdefault("model", {})["backbone"] = backbone
        raw.setdefault("data", {})
        if size is not None:
            raw["data"]["size"] = size
        raw["data"]["caption_policy"] = policy
        raw["seed"] = seed
        slug = f"{backbone}.{size_slug(size)}.{policy}.s{seed}"
        try:
            config = TrainConfig.model_validate({**raw, "run_dir": _PLACEHOLDER_RUN_DIR})
        except ValidationError as error:
            problems = format_validation_error(error, within="base")
            raise UserError(f"invalid study spec {source}: run {slug}: {problems}") from None
        resolved = config.model_dump(mode="json")
        resolved.pop("run_dir")
        digest = config_hash(run_identity(resolved))
        if f"{slug}-{digest}" in seen:
            continue
        seen.add(f"{slug}-{digest}")
        runs.append(PlannedRun(f"{slug}-{digest}", position, digest, resolved))
    return runs


def load_spec(source: str | Path | dict | StudySpec, overrides: list[str] = ()) -> StudySpec:
    """A validated spec from a TOML/JSON file, a preset name, a dict or a spec, with `--set key=value` overrides
    (e.g. `base.budget.total_steps=200`, `executor.kind=local`); every grid point must be a valid run config."""
    spec, where = parse_spec(source, overrides)
    expand_grid(spec, source=where)
    return spec


def select_runs(runs: list[PlannedRun], pattern: str | None) -> list[PlannedRun]:
    """`--only`: a glob over run ids (`sdxl-*.s0-*`); a pattern without wildcards matches as a substring."""
    if not pattern:
        return runs
    from fnmatch import fnmatchcase

    glob = pattern if any(char in pattern for char in "*?[") else f"*{pattern}*"
    chosen = [run for run in runs if fnmatchcase(run.run_id, glob)]
    if not chosen:
        raise UserError(f"--only {pattern!r} matches none of the {len(runs)} runs of the study")
    return chosen


# -- accounting ----------------------------------------------------------------------------------------------


def run_accounting(run: PlannedRun) -> tuple[Accounting, str]:
    """The run's size in the setting training builds it in (`t2iscale.train.config.run_setting`), and a note when
    that setting could not be read (prepared data not prepared yet: the paper setting is assumed)."""
    config = TrainConfig.model_validate({**run.config, "run_dir": _PLACEHOLDER_RUN_DIR})
    if config.data.kind != "shapes" and not (Path(config.data.path) / META_FILE).is_file():
        note = (
            f"{Path(config.data.path) / META_FILE} not found: sizes assume the paper setting (256 px, SDXL-VAE "
            "latents 4x32x32, 77 x 1024 text context)"
        )
        return account(run.backbone, PAPER_SETTING), note
    return account(run.backbone, run_setting(config)), ""


def budget_train_flops(run: PlannedRun, accounting: Accounting) -> float:
    """Training compute of the whole budget: steps x global batch x 3 x forward FLOPs (the paper's rule)."""
    return accounting.train_flops(run.total_steps * run.global_batch)


def noun_pairs_by_run(runs: list[PlannedRun]) -> dict[str, int | None]:
    """D, the training set's image-noun pairs, per run (shapes world; None for prepared real data).

    Sizes are nested subsets, so one pass over the largest size of each (world, data seed, policy) gives every
    smaller size as a prefix sum.
    """
    from t2iscale.data.shapes import ShapesDataset

    groups: dict[tuple, int] = {}
    for run in runs:
        data = run.config["data"]
        if data["kind"] == "shapes":
            key = (data["world"], data["seed"], data["caption_policy"])
            groups[key] = max(groups.get(key, 0), data["size"])
    prefix: dict[tuple, list[int]] = {}
    for (world, seed, policy), largest in groups.items():
        dataset = ShapesDataset(world, seed, largest, policy)
        sums = [0]
        for index in range(largest):
            sums.append(sums[-1] + dataset.noun_pairs(index))
        prefix[(world, seed, policy)] = sums
    result = {}
    for run in runs:
        data = run.config["data"]
        if data["kind"] == "shapes":
            result[run.run_id] = prefix[(data["world"], data["seed"], data["caption_policy"])][data["size"]]
        else:
            # Real captions: no noun counter in the toolkit yet, so D is unknown for prepared data.
            result[run.run_id] = None
    return result

"""The study file: one recipe, a grid of runs, and where they execute (typed and strict; TOML).

    name = "unet-ablation-mini"            # optional; the default study folder is studies/<name>
    description = "..."

    [base]                                 # every run's TrainConfig except run_dir: identical for all runs
    seed = 0                               # (the paper's controlled setting, Li et al., CVPR 2024, Sec. 3)
    [base.model] ... [base.data] ... [base.text] ... [base.recipe] ... [base.budget] ... [base.eval] ...

    [grid]                                 # each list optional; absent = the base's single value
    backbones = ["sd2-c16", "sdxl-c16"]    # -> model.backbone
    dataset_sizes = [1000, 4000]           # -> data.size (nested subsets: the first N images)
    caption_policies = ["alt", "mix"]      # -> data.caption_policy
    seeds = [0, 1]                         # -> seed (the run seed; the data seed stays the base's)

    # Several grids: `[[grids]]` tables instead of one `[grid]`. The study's runs are the union of their
    # products; a run two grids both name (same resolved config) is one run, trained once, in both analyses.

    [executor]
    kind = "local"                         # local (in-process, the default) | subprocess | slurm

    factors = ["caption_policy"]           # optional, top level: what the study compares (`t2iscale compare
                                           # --by`); its summaries and report carry these comparisons

Unknown keys anywhere are errors that name the key. The base is validated as a full `TrainConfig` once per grid
point when the grid is expanded (`t2iscale.study.plan.load_spec`), so a bad recipe fails before any run starts.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from t2iscale.data.caption_policy import CAPTION_POLICIES
from t2iscale.errors import UserError
from t2iscale.strict import Strict, format_validation_error
from t2iscale.train.config import apply_overrides, load_raw_config, parse_override

# The TrainConfig sections a study's [base] may hold; run_dir is the runner's (`<study>/runs/<run_id>`).
BASE_KEYS = ("seed", "model", "data", "text", "recipe", "budget", "eval")
PRESET_PACKAGE = "t2iscale.study"
PRESET_FOLDER = "presets"
# What a study can compare (`t2iscale compare --by FACTOR`): a grid axis other than the seed, or a factor derived
# from the backbones: `layout` (the zoo family: SD2 vs SDXL vs IF layout, paper Sec. 4.1) and `scaling` (an SDXL
# ladder over channels C against one over transformer depth TD, sharing a reference backbone, Sec. 4.2).
GRID_FACTORS = ("backbone", "dataset_size", "caption_policy")
DERIVED_FACTORS = ("layout", "scaling")
FACTORS = GRID_FACTORS + DERIVED_FACTORS


def _unique(values: list | None, key: str) -> list | None:
    if values is not None and len(set(map(json.dumps, values))) != len(values):
        raise ValueError(f"{key} lists a value twice")
    return values


class GridSpec(Strict):
    """The axes of the study; the runs are their product, in this order (backbone outermost, seed innermost)."""

    backbones: list[str] | None = Field(None, min_length=1, description="zoo names (`t2iscale zoo`)")
    dataset_sizes: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, min_length=1, description="training images (nested subsets of one ordered dataset)"
    )
    caption_policies: list[Literal[CAPTION_POLICIES]] | None = Field(
        None, min_length=1, description="alt, syn1, syn5, mix (paper Sec. 5)"
    )
    seeds: list[int] | None = Field(None, min_length=1, description="run seeds (init, noise, data order)")

    @field_validator("backbones")
    @classmethod
    def _known_backbones(cls, names):
        from t2iscale.zoo import resolve

        for name in names or ():
            try:
                resolve(name)
            except UserError as error:
                raise ValueError(str(error)) from None
        return _unique(names, "backbones")

    @field_validator("dataset_sizes", "caption_policies", "seeds")
    @classmethod
    def _no_repeats(cls, values, info):
        return _unique(values, info.field_name)


class ExecutorCommon(Strict):
    # A claim is someone's while its owner lives: its heartbeat (every heartbeat_s) is younger than
    # stale_after_min, or, on the same host, its process still exists.
    heartbeat_s: float = Field(30.0, gt=0, description="seconds between heartbeats of a running run's claim")
    stale_after_min: float = Field(
        10.0, gt=0, description="a claim without a heartbeat for this long may be taken over"
    )


class LocalExecutorSpec(ExecutorCommon):
    """Every run in this process, one after the other."""

    kind: Literal["local"] = "local"


class SubprocessExecutorSpec(ExecutorCommon):
    """One `t2iscale train` process per run; a launcher makes each run multi-process through Accelerate."""

    kind: Literal["subprocess"] = "subprocess"
    launcher: list[str] = Field(
        default_factory=list,
        description='e.g. ["torchrun", "--nproc_per_node=8"] or ["accelerate", "launch", "--num_processes=8"]; '
        "the command gets `-m t2iscale.cli train --config <run>/config.json` appended",
    )
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")


class SlurmExecutorSpec(ExecutorCommon):
    """One submitit job per run; the job claims its run and writes its results to the study database itself."""

    kind: Literal["slurm"] = "slurm"
    cluster: Literal["slurm", "local", "debug"] = Field(
        "slurm", description="submitit cluster: slurm, or local/debug to try the same code without Slurm"
    )
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    tasks_per_node: int | None = Field(
        None, ge=1, description="processes per node; default: one per GPU (each one a rank of the run)"
    )
    cpus_per_task: int | None = Field(None, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    timeout_min: int = Field(60, ge=1, description="per job; a job that times out is requeued and resumes")
    max_requeues: int = Field(3, ge=0, description="times a timed-out or preempted job is requeued")
    array_parallelism: int | None = Field(None, ge=1, description="at most this many jobs run at once")
    setup: list[str] = Field(default_factory=list, description="shell lines run before each job")
    additional: dict[str, str | int | bool] = Field(
        default_factory=dict, description="extra #SBATCH options (slurm_additional_parameters)"
    )
    folder: str | None = Field(None, description="submitit logs and pickles; default <study_dir>/slurm")
    wait: bool = Field(True, description="wait for the jobs and report; false: submit and return")

    @property
    def processes_per_node(self) -> int:
        return self.tasks_per_node or max(self.gpus_per_node, 1)


ExecutorSpec = Annotated[
    LocalExecutorSpec | SubprocessExecutorSpec | SlurmExecutorSpec, Field(discriminator="kind")
]
EXECUTOR_KINDS = ("local", "subprocess", "slurm")


class StudySpec(Strict):
    name: str | None = Field(None, description="the study's name (default folder: studies/<name>)")
    description: str = ""
    base: dict[str, Any] = Field(..., description="the shared TrainConfig sections (all but run_dir)")
    grid: GridSpec = Field(default_factory=GridSpec)
    grids: list[GridSpec] | None = Field(
        None, min_length=1, description="several grids ([[grids]] tables) whose runs are united"
    )
    executor: ExecutorSpec = Field(default_factory=LocalExecutorSpec)
    factors: list[Literal[FACTORS]] = Field(
        default_factory=list, description="factors the study compares (t2iscale compare --by)"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_executor_kind(cls, data):
        if isinstance(data, dict) and isinstance(data.get("executor"), dict):
            data = {**data, "executor": {"kind": "local", **data["executor"]}}
        return data

    @field_validator("base")
    @classmethod
    def _base_sections(cls, base):
        for key in base:
            if key == "run_dir":
                raise ValueError("run_dir is set by the study runner (<study_dir>/runs/<run_id>)")
            if key not in BASE_KEYS:
                raise ValueError(f"unknown key {key!r}; valid keys: {', '.join(BASE_KEYS)}")
        return base

    @model_validator(mode="after")
    def _one_kind_of_grid(self):
        if self.grids is not None and self.grid != GridSpec():
            raise ValueError("give one [grid] or several [[grids]] tables, not both")
        return self

    def each_grid(self) -> list[GridSpec]:
        """The study's grids: the one [grid], or the [[grids]] tables in file order."""
        return list(self.grids) if self.grids is not None else [self.grid]

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json")


def validate_spec(raw: dict[str, Any], source: str = "(dict)") -> StudySpec:
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as error:
        # The executor's kind is left out of the keys: executor.partition, not executor.slurm.partition.
        problems = format_validation_error(error, union_tags={"executor": EXECUTOR_KINDS})
        raise UserError(f"invalid study spec {source}: {problems}") from None


# -- presets and files ---------------------------------------------------------------------------------------


def preset_names() -> list[str]:
    folder = resources.files(PRESET_PACKAGE) / PRESET_FOLDER
    return sorted(
        entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml")
    )


def preset_text(name: str) -> str:
    return (resources.files(PRESET_PACKAGE) / PRESET_FOLDER / f"{name}.toml").read_text()


def _load_raw(source: str | Path) -> tuple[dict, str]:
    """(raw dict, description of where it came from) for a file path or a preset name."""
    path = Path(source)
    if path.is_file():
        return load_raw_config(path), str(path)
    name = str(source)
    if name in preset_names():
        import tomllib

        return tomllib.loads(preset_text(name)), f"preset {name!r}"
    raise UserError(
        f"study spec {name!r} is neither a file nor a preset; presets: {', '.join(preset_names())}"
    )


def parse_spec(source: str | Path | dict | StudySpec, overrides: list[str] = ()) -> tuple[StudySpec, str]:
    """(spec, where it came from) from a TOML/JSON file, a preset name, a dict or a spec, with `--set key=value`
    overrides (e.g. `base.budget.total_steps=200`, `executor.kind=local`). The schema only: whether every grid
    point is a valid run is `t2iscale.study.plan.load_spec`'s check."""
    if isinstance(source, StudySpec):
        raw, where = source.to_json_dict(), "(spec)"
    elif isinstance(source, dict):
        raw, where = source, "(dict)"
    else:
        raw, where = _load_raw(source)
    if overrides:
        _refuse_grid_overrides_of_several_grids(raw, list(overrides))
        raw = _switch_executor_kind(raw, apply_overrides(raw, list(overrides)), list(overrides))
        _refuse_base_overrides_a_grid_sets(raw, list(overrides))
    return validate_spec(raw, where), where


# The run key each grid axis sets (`t2iscale.study.plan` expands them): a base value of that key is only the
# default of a study without the axis.
GRID_AXIS_KEYS = {
    "backbones": ("model", "backbone"),
    "dataset_sizes": ("data", "size"),
    "caption_policies": ("data", "caption_policy"),
    "seeds": ("seed",),
}


def _refuse_grid_overrides_of_several_grids(raw: dict, overrides: list[str]) -> None:
    """`--set grid.seeds=...` cannot say which of several [[grids]] tables it means."""
    for text in overrides:
        if parse_override(text)[0][0] in ("grid", "grids") and isinstance(raw.get("grids"), list):
            raise UserError(
                f"--set {text!r}: this study's grids are [[grids]] tables, which --set does not reach into; edit "
                "its spec file (a copy of a preset: `t2iscale study presets --show NAME > study.toml`)"
            )


def _refuse_base_overrides_a_grid_sets(raw: dict, overrides: list[str]) -> None:
    """`--set base.model.backbone=X` on a study whose grid lists backbones would be silently replaced by the grid
    in every run: an error naming both keys instead."""
    grids = raw.get("grids") if isinstance(raw.get("grids"), list) else [raw.get("grid")]
    grids = [grid for grid in grids if isinstance(grid, dict)]
    for text in overrides:
        path, value = parse_override(text)
        if path[0] != "base":
            continue
        for axis, key in GRID_AXIS_KEYS.items():
            sets_key = tuple(path[1:]) == key or (
                tuple(path[1:]) == key[:-1] and isinstance(value, dict) and key[-1] in value
            )
            # no effect only when every grid sets the axis (a grid without it takes the base's value)
            if sets_key and grids and all(grid.get(axis) is not None for grid in grids):
                raise UserError(
                    f"--set {text!r} has no effect: grid.{axis} sets {'.'.join(key)} of every run (to "
                    f"{grids[0][axis]}); set grid.{axis} instead (e.g. --set 'grid.{axis}=[...]'), or "
                    f"--set grid.{axis}=null to use base.{'.'.join(key)}"
                )


EXECUTOR_SPECS = {
    "local": LocalExecutorSpec,
    "subprocess": SubprocessExecutorSpec,
    "slurm": SlurmExecutorSpec,
}


def _switch_executor_kind(before: dict, after: dict, overrides: list[str]) -> dict:
    """`--set executor.kind=local` on a Slurm preset: the file's keys of the old kind (partition, nodes, ...) do not
    carry over to the new one, which would reject them as unknown; keys every kind has (heartbeat_s) and keys the
    overrides themselves set do. A key set by an override that the new kind lacks stays an error."""
    old_section, new_section = before.get("executor"), after.get("executor")
    if not isinstance(old_section, dict) or not isinstance(new_section, dict):
        return after
    old_kind, new_kind = old_section.get("kind", "local"), new_section.get("kind", "local")
    if old_kind == new_kind or new_kind not in EXECUTOR_SPECS:
        return after
    accepted = set(EXECUTOR_SPECS[new_kind].model_fields)
    paths = [parse_override(text)[0] for text in overrides]
    overridden = {path[1] for path in paths if len(path) > 1 and path[0] == "executor"}
    kept = {key: value for key, value in new_section.items() if key in accepted or key in overridden}
    return {**after, "executor": kept}

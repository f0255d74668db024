"""Run a study: validate the spec, register its runs in the study folder, execute the unfinished ones, report.

    run_study("unet-ablation-mini", "studies/unet")          # a preset name, a TOML file, a dict or a StudySpec

The study folder:

    <study_dir>/study.sqlite      runs, status, evaluations (`t2iscale.study.registry`)
    <study_dir>/study.json        the spec it was created with (the database holds the same)
    <study_dir>/runs/<run_id>/    one run folder each (config.json, metrics.jsonl, checkpoints/, eval/, final/)

Running a study again skips finished runs and resumes unfinished ones from their last checkpoint; a spec that
only adds grid points adds runs; any other change is refused.

Nothing trains before every selected run passed its checks: the config's (every grid point is validated when the
spec is loaded: metrics' keys, data against prepared.json) and the evaluation preflight's
(`t2iscale.eval.preflight`: files, the FID network's width against the image counts). `--dry-run` prints the
same problems for every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.study.attempt import RunOutcome, run_config, write_run_config
from t2iscale.study.executors import make_executor
from t2iscale.study.plan import (
    PlannedRun,
    budget_train_flops,
    expand_grid,
    load_spec,
    noun_pairs_by_run,
    run_accounting,
    select_runs,
)
from t2iscale.study.registry import SPEC_FILE, StudyRegistry, db_path, spec_change_message
from t2iscale.study.spec import StudySpec
from t2iscale.train.run_dir import RunDir, write_json_atomic

STUDIES_FOLDER = "studies"


@dataclass
class StudyReport:
    study_dir: Path
    outcomes: list[RunOutcome] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.outcomes if item.outcome == outcome)

    @property
    def failed(self) -> list[RunOutcome]:
        return [item for item in self.outcomes if item.failed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        order = (
            "finished",
            "already finished",
            "failed",
            "diverged",
            "skipped diverged",
            "running elsewhere",
            "queued",
        )
        parts = [f"{self.count(name)} {name}" for name in order if self.count(name)]
        return f"study {self.study_dir}: " + (", ".join(parts) if parts else "no runs selected")


def default_study_dir(spec: StudySpec, source) -> Path:
    name = spec.name or (Path(str(source)).stem if isinstance(source, str | Path) else "study")
    return Path(STUDIES_FOLDER) / name


def prepared_noun_pairs(run: PlannedRun) -> int | None:
    """D of a run on prepared data: the image-noun pairs of its training set, when `data prepare` counted them
    (`--noun-tagger`); None otherwise (then `t2iscale fit --x data` falls back to the dataset size)."""
    from t2iscale.data.prepared_meta import META_FILE, dataset_noun_pairs, read_prepared_meta

    data = run.config["data"]
    if data["kind"] != "prepared" or not (Path(data["path"]) / META_FILE).is_file():
        return None
    meta = read_prepared_meta(data["path"])
    return dataset_noun_pairs(data["path"], meta, data["size"], data["caption_policy"])


def run_problems(runs: list[PlannedRun], study_dir: str | Path) -> dict[str, list[str]]:
    """What would stop each run (`t2iscale.eval.preflight.evaluation_problems`), by run id; empty lists when fine."""
    from t2iscale.eval.preflight import evaluation_problems

    return {run.run_id: evaluation_problems(run.train_config(study_dir)) for run in runs}


def check_runs(runs: list[PlannedRun], study_dir: str | Path) -> None:
    """Raise one UserError naming the first run with a problem (and how many more) before anything trains."""
    problems = {run_id: lines for run_id, lines in run_problems(runs, study_dir).items() if lines}
    if problems:
        run_id, lines = next(iter(problems.items()))
        total = sum(len(lines) for lines in problems.values())
        more = f" ({total - 1} more problem(s) in {len(problems)} run(s); see --dry-run)" if total > 1 else ""
        raise UserError(f"run {run_id}: {lines[0]}{more}; nothing was trained")


def run_sizes(runs: list[PlannedRun]) -> dict[str, dict]:
    """Params, GMACs, training FLOPs per image and D of each run: what the runs table records."""
    noun_pairs = noun_pairs_by_run(runs)
    for run in runs:
        if noun_pairs[run.run_id] is None:
            noun_pairs[run.run_id] = prepared_noun_pairs(run)
    sizes = {}
    for run in runs:
        accounting, note = run_accounting(run)
        sizes[run.run_id] = {
            "family": accounting.family,
            "params": accounting.params,
            "gmacs": accounting.gmacs,
            "train_gflops_per_image": accounting.train_gflops_per_image,
            "size_note": note,
            "dataset_noun_pairs": noun_pairs[run.run_id],
            "budget_train_flops": budget_train_flops(run, accounting),
        }
    return sizes


def _uses_shared_filesystem(spec: StudySpec) -> bool:
    return spec.executor.kind == "slurm" and spec.executor.cluster == "slurm"


def _refuse_dropped_runs(registry, study_dir: Path, spec_json: dict, known: set[str], planned) -> None:
    """A spec that drops runs this study already holds is another study: UserError saying what changed."""
    missing = sorted(known - {run.run_id for run in planned})
    if missing:
        raise UserError(spec_change_message(study_dir, registry.stored_spec(), spec_json, missing))


def register_study(
    spec: StudySpec, study_dir: str | Path, source: str = "(spec)"
) -> tuple[list[PlannedRun], list[str]]:
    """Create or open the study folder, check the spec against it, add new runs; (planned runs, added ids)."""
    study_dir = Path(study_dir)
    planned = expand_grid(spec, source)
    spec_json = spec.to_json_dict()
    with StudyRegistry(study_dir, create=True, shared_filesystem=_uses_shared_filesystem(spec)) as registry:
        known = {row["run_id"] for row in registry.runs()}
        # refuse before the size accounting below (it may take seconds for big datasets)
        _refuse_dropped_runs(registry, study_dir, spec_json, known, planned)
        sizes = run_sizes([run for run in planned if run.run_id not in known])
        added = registry.register(spec_json, planned, sizes)
        rows = registry.runs()
    write_json_atomic(study_dir / SPEC_FILE, spec_json)
    for row in rows:
        if not (study_dir / row["run_dir"] / "config.json").is_file():
            write_run_config(run_config(study_dir, row))
    return planned, added


def run_study(
    source: str | Path | dict | StudySpec,
    study_dir: str | Path | None = None,
    *,
    only: str | None = None,
    overrides: list[str] = (),
    progress: bool = True,
    retry_diverged: bool = False,
    resubmit: bool = False,
) -> StudyReport:
    """Register and execute a study's runs (those matching `only`) with the spec's executor; never raises for a
    failed run (see `StudyReport.failed`), only for bad input."""
    spec = load_spec(source, overrides)
    study_dir = Path(study_dir) if study_dir is not None else default_study_dir(spec, source)
    check_runs(select_runs(expand_grid(spec), only), study_dir)  # before the study folder is touched
    planned, added = register_study(
        spec, study_dir, str(source) if isinstance(source, str | Path) else "(spec)"
    )
    chosen = select_runs(planned, only)
    executor = make_executor(spec.executor)
    outcomes = executor.execute(
        study_dir,
        [run.run_id for run in chosen],
        progress=progress,
        retry_diverged=retry_diverged,
        resubmit=resubmit,
    )
    return StudyReport(study_dir, outcomes, added)


def dry_run_rows(spec: StudySpec, study_dir: str | Path | None, only: str | None = None) -> list[dict]:
    """What `study run --dry-run` prints: every run with its size and budget, and its status if the study exists."""
    planned = select_runs(expand_grid(spec), only)
    sizes = run_sizes(planned)
    problems = run_problems(planned, study_dir if study_dir is not None else ".")
    statuses = {}
    if study_dir is not None and db_path(study_dir).is_file():
        with StudyRegistry(study_dir) as registry:
            statuses = {row["run_id"]: row["status"] for row in registry.runs()}
            # the refusal `study run` would give
            _refuse_dropped_runs(
                registry, Path(study_dir), spec.to_json_dict(), set(statuses), expand_grid(spec)
            )
    return [
        {
            "run_id": run.run_id,
            "status": statuses.get(run.run_id, "new"),
            "backbone": run.backbone,
            "dataset_size": run.dataset_size,
            "caption_policy": run.caption_policy,
            "seed": run.seed,
            **{
                key: sizes[run.run_id][key]
                for key in ("params", "gmacs", "budget_train_flops", "dataset_noun_pairs")
            },
            "total_steps": run.total_steps,
            "global_batch": run.global_batch,
            "note": sizes[run.run_id]["size_note"],
            "problems": problems[run.run_id],
        }
        for run in planned
    ]


def sync_study(study_dir: str | Path) -> dict[str, int]:
    """Re-import every run folder's results; mark runs finished whose folder says so; release dead claims."""
    study_dir = Path(study_dir)
    with StudyRegistry(study_dir) as registry:
        spec = registry.stored_spec() or {}
        stale_after_s = float(spec.get("executor", {}).get("stale_after_min", 10.0)) * 60
        imported = completed = 0
        for row in registry.runs():
            run = RunDir(registry.run_dir(row))
            if not run.path.is_dir():
                continue
            imported += registry.import_results(row["run_id"])
            finished_in_folder = run.read_status().get("status") == "finished" and run.final.is_dir()
            if finished_in_folder and row["status"] != "finished":
                registry.mark_finished_from_folder(row["run_id"])
                completed += 1
        released = registry.release_abandoned(stale_after_s)
    return {"evaluations": imported, "marked_finished": completed, "released_claims": len(released)}


def stored_spec(study_dir: str | Path) -> StudySpec:
    with StudyRegistry(study_dir) as registry:
        raw = registry.stored_spec()
    if raw is None:
        raise UserError(f"{study_dir}: the study database holds no spec")
    return StudySpec.model_validate(json.loads(json.dumps(raw)))

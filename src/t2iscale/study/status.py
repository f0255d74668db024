"""`t2iscale study status`: progress per run, from the database and each run folder's status.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.metrics import metric_info
from t2iscale.eval.samples import SampleScores
from t2iscale.study.ownership import claim_is_abandoned
from t2iscale.study.registry import StudyRegistry
from t2iscale.train.run_dir import RunDir

DEFAULT_STALE_AFTER_S = 600.0


def last_logged_step(metrics_file: Path, tail_bytes: int = 16_384) -> int:
    """The step of the last complete line of a run's metrics.jsonl (status.json is only written at start and end)."""
    if not metrics_file.is_file():
        return 0
    with metrics_file.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - tail_bytes))
        lines = handle.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line, or the cut first one
    return 0


def status_rows(study_dir: str | Path) -> list[dict]:
    """One dict per run in grid order: status, step / total steps, last value of each metric, elapsed seconds."""
    with StudyRegistry(study_dir) as registry:
        runs = registry.runs()
        evaluations = registry.evaluations()
        spec = registry.stored_spec() or {}
        folders = {row["run_id"]: registry.run_dir(row) for row in runs}
    stale_after_s = float(spec.get("executor", {}).get("stale_after_min", DEFAULT_STALE_AFTER_S / 60)) * 60
    last: dict[str, dict[str, dict]] = {}
    for row in evaluations:  # ordered by run, metric, step: the last one wins
        last.setdefault(row["run_id"], {})[row["metric"]] = row
    last = {run_id: {m: metric_entry(row) for m, row in rows.items()} for run_id, rows in last.items()}
    now = time.time()
    result = []
    for row in runs:
        run = RunDir(folders[row["run_id"]])
        folder_status = run.read_status()
        step = folder_status.get("step", 0)
        if folder_status.get("status") == "running":
            step = max(step, last_logged_step(run.metrics_file))
        elapsed = row["elapsed_s"] or 0.0
        status = row["status"]
        if status == "running":
            elapsed += now - (row["claimed_at"] or now)
            why = claim_is_abandoned(row["owner"], row["heartbeat_at"], stale_after_s)
            if why:
                status = f"running? ({why} claim)"
        result.append(
            {
                "run_id": row["run_id"],
                "status": status,
                "step": step,
                "total_steps": row["total_steps"],
                "metrics": last.get(row["run_id"], {}),
                "elapsed_s": elapsed
                if (row["elapsed_s"] is not None or row["status"] == "running")
                else None,
                "images_per_s": row["images_per_s"],
                "params": row["params"],
                "gmacs": row["gmacs"],
                "dataset_noun_pairs": row["dataset_noun_pairs"],
                "owner": row["owner"],
                "job_id": row["job_id"],
                "attempts": row["attempts"],
                "error": row["error"],
            }
        )
    return result


def metric_entry(row: dict) -> dict:
    """A run's last evaluation of a metric: step, value and, for a per-image metric, its 95% interval over the
    prompts (within the run's training seed) with n; a set statistic (FID) carries its n_images."""
    entry = {
        "step": row["step"],
        "value": row["value"],
        "n_images": row.get("n_images"),
        "set_statistic": not metric_info(row["metric"]).per_sample,
    }
    if row.get("samples") and row["value"] is not None:
        estimate = replicate_estimate(
            [SampleScores.from_dict(json.loads(row["samples"]))],
            value_range=metric_info(row["metric"]).value_range,
        )
        entry.update(
            lo=estimate.lo,
            hi=estimate.hi,
            level=estimate.level,
            n_prompts=estimate.n_prompts,
            n_images=estimate.n_samples,
            method=estimate.method,
        )
    return entry


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


CELL = 24


def _metric_cell(entry: dict | None) -> str:
    if entry is None:
        text = "-"
    elif entry["value"] is None:
        text = "nan"
    elif "lo" in entry:
        text = f"{entry['value']:.3f} [{entry['lo']:.3f}, {entry['hi']:.3f}]"
    else:  # a set statistic carries its N; a per-image value evaluated before samples were kept, its value
        n = f" (N={entry['n_images']})" if entry["set_statistic"] and entry.get("n_images") else ""
        text = f"{entry['value']:.4g}{n}"
    return f"{text:>{CELL}}"


def format_status(study_dir: str | Path, rows: list[dict]) -> str:
    metrics = sorted({metric for row in rows for metric in row["metrics"]})
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    width = max([len("run_id"), *(len(row["run_id"]) for row in rows)])
    header = f"{'run_id':<{width}}  {'status':<10} {'step':>13}  " + "".join(f"{m:>{CELL}}" for m in metrics)
    lines = [
        f"study {study_dir}: {len(rows)} runs, " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        header + f"  {'elapsed':>9}  {'img/s':>8}",
    ]
    for row in rows:
        values = "".join(_metric_cell(row["metrics"].get(m)) for m in metrics)
        speed = f"{row['images_per_s']:>8.1f}" if row["images_per_s"] is not None else f"{'-':>8}"
        lines.append(
            f"{row['run_id']:<{width}}  {row['status']:<10} {str(row['step']) + '/' + str(row['total_steps']):>13}  "
            f"{values}  {format_duration(row['elapsed_s']):>9}  {speed}"
        )
        if row["error"] and row["status"] in ("failed", "diverged", "pending"):
            lines.append(f"{'':<{width}}  ! {row['error']}")
    entries = [entry for row in rows for entry in row["metrics"].values()]
    sizes = {(e["n_prompts"], e["n_images"]) for e in entries if "lo" in e}
    if sizes:
        n_text = "; ".join(f"{p} prompts, {n} images" for p, n in sorted(sizes))
        set_statistic = (
            "; N: images behind a set statistic" if any(e["set_statistic"] for e in entries) else ""
        )
        lines.append(
            f"values: each run's last evaluation, with its 95% interval over prompts within the run's training "
            f"seed ({n_text}){set_statistic}"
        )
    if metrics:  # what each column measures, e.g. which CLIP score definition and scale
        lines.append("metrics: " + "; ".join(f"{m} = {metric_info(m).title}" for m in metrics))
    return "\n".join(lines)

"""`t2iscale demo`: a whole scaling study on a laptop or CI box, in minutes.

A ladder of UNets of increasing size is trained on the shapes world under one recipe, evaluated along training with
the oracle TIFA, fitted (S = a·C^b on the compute Pareto frontier, as in the paper's Sec. 6, and S = a·N^b on final
values), and reported. The study is the shipped preset `demo` (`t2iscale study presets --show demo`); its recipe and
world were tuned once, honestly and identically for every model, so that 2 CPU cores show a real trend.

This module sits at the end of the data flow (study -> scaling -> report): it only drives them.
Runs are trained by `workers` runner processes on the same study folder (the registry gives each run to one of
them), each with cores/workers threads: tiny models use one core better than two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from t2iscale.errors import UserError

DEMO_PRESET = "demo"
METRIC = "tifa"
# The bars the demo is held to (issue: the trend must be real).
MIN_MARGIN_OVER_CHANCE = 0.25
MIN_SPEARMAN = 0.8


def _worker_command(out: Path, overrides: list[str]) -> list[str]:
    sets = [f"--set={override}" for override in overrides]
    return [
        sys.executable,
        "-m",
        "t2iscale.cli",
        "study",
        "run",
        DEMO_PRESET,
        "--dir",
        str(out),
        "--quiet",
        *sets,
    ]


def _steps_done(run_dirs: list[Path]) -> int:
    """Steps logged so far over all runs (from each run's metrics.jsonl; a resumed run restarts from its log)."""
    from t2iscale.train.jsonl import read_jsonl

    return sum(
        (read_jsonl(run_dir / "metrics.jsonl")[-1:] or [{"step": 0}])[0]["step"] for run_dir in run_dirs
    )


def train_ladder(out: Path, workers: int, overrides: list[str], progress: bool) -> None:
    """Register the study, then let `workers` runner processes train it; a progress bar over all steps."""
    from tqdm.auto import tqdm

    from t2iscale.study.runner import register_study
    from t2iscale.study.spec import load_spec

    spec = load_spec(DEMO_PRESET, overrides)
    planned, _ = register_study(spec, out, DEMO_PRESET)
    run_dirs = [out / "runs" / run.run_id for run in planned]
    total_steps = sum(run.config["budget"]["total_steps"] for run in planned)
    threads = max(1, (os.cpu_count() or 2) // workers)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    logs = [out / f"worker-{index}.log" for index in range(workers)]
    processes = [
        subprocess.Popen(
            _worker_command(out, overrides), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        for log in logs
    ]
    bar = tqdm(
        total=total_steps,
        desc=f"demo: {len(planned)} runs on {workers} workers",
        unit="step",
        disable=not progress,
    )
    try:
        while any(process.poll() is None for process in processes):
            bar.n = min(total_steps, _steps_done(run_dirs))
            bar.refresh()
            time.sleep(1.0)
        bar.n = min(total_steps, _steps_done(run_dirs))
        bar.refresh()
    finally:
        bar.close()
        for process in processes:
            if process.poll() is None:
                process.terminate()
    failed = [str(log) for process, log in zip(processes, logs) if process.returncode != 0]
    if failed:
        tails = "; ".join(f"{log}: {Path(log).read_text().strip().splitlines()[-1:]}" for log in failed)
        raise UserError(f"a demo worker failed ({tails}); rerun `t2iscale demo` to resume")


def summarize(out: Path, elapsed_s: float) -> dict:
    """Per model: name, params, final TIFA; Spearman of TIFA with params; the fits; the bars; elapsed seconds."""
    from t2iscale.scaling.correlation import final_value_correlations
    from t2iscale.scaling.fits import fit_law
    from t2iscale.scaling.frontier import pareto_frontier
    from t2iscale.scaling.points import scaling_points
    from t2iscale.study.results import load_curves, load_runs

    runs = {run.run_id: run for run in load_runs(out)}
    curves = sorted(load_curves(out, METRIC), key=lambda curve: curve.params)
    if len(curves) < len(runs):
        missing = sorted(set(runs) - {curve.run_id for curve in curves})
        raise UserError(f"runs without {METRIC} evaluations: {', '.join(missing)}; rerun `t2iscale demo`")
    chance = _chance_level(runs[curves[-1].run_id].run_dir)
    models = [
        {
            "name": runs[curve.run_id].backbone,
            "run_id": curve.run_id,
            "params": curve.params,
            "gmacs": curve.gmacs,
            "final_tifa": curve.final_value,
            "final_categories": {name: values[-1] for name, values in curve.category.items()},
            "images_per_s": runs[curve.run_id].images_per_s,
        }
        for curve in curves
    ]
    correlations = {
        f"{c.method}_{c.predictor}": {"coefficient": c.coefficient, "p_value": c.p_value}
        for c in final_value_correlations(curves)
    }
    compute_points = pareto_frontier(scaling_points(curves, "compute"))
    fits = {}
    for axis, points in (("compute", compute_points), ("params", scaling_points(curves, "params"))):
        try:
            fit = fit_law([p.x for p in points], [p.value for p in points], form="power", progress=False)
            fits[axis] = {"law": fit.render("C" if axis == "compute" else "N"), **fit.to_dict()}
        except UserError as error:
            fits[axis] = {"error": str(error)}
    largest = models[-1]
    spearman = correlations["spearman_params"]["coefficient"]
    return {
        "study": str(out),
        "metric": METRIC,
        "chance_level": chance,
        "models": models,
        "spearman_params_tifa": spearman,
        "correlations": correlations,
        "fits": fits,
        "bars": {
            "largest_margin_over_chance": largest["final_tifa"] - chance,
            "largest_margin_over_chance_ok": largest["final_tifa"] - chance >= MIN_MARGIN_OVER_CHANCE,
            "spearman_ok": spearman >= MIN_SPEARMAN,
        },
        "elapsed_s": elapsed_s,
    }


def _chance_level(run_dir: Path) -> float:
    from t2iscale.train.jsonl import read_jsonl

    records = [record for record in read_jsonl(run_dir / "eval" / "eval.jsonl") if record["metric"] == METRIC]
    return float(records[-1]["chance_level"])


def print_summary(summary: dict, report: Path) -> None:
    print(f"\n{'model':<20} {'params':>12} {'GMACs':>8} {'TIFA':>7}   (chance {summary['chance_level']:.3f})")
    for model in summary["models"]:
        print(
            f"{model['name']:<20} {model['params']:>12,} {model['gmacs']:>8.4f} {model['final_tifa']:>7.3f}"
        )
    bars = summary["bars"]
    print(
        f"Spearman(params, TIFA) = {summary['spearman_params_tifa']:.2f} (bar {MIN_SPEARMAN}: "
        f"{'met' if bars['spearman_ok'] else 'NOT met'}); largest model {bars['largest_margin_over_chance']:+.3f} "
        f"over chance (bar {MIN_MARGIN_OVER_CHANCE}: {'met' if bars['largest_margin_over_chance_ok'] else 'NOT met'})"
    )
    for axis, fit in summary["fits"].items():
        print(f"fit vs {axis}: {fit.get('law', fit.get('error'))}")
    print(f"elapsed {summary['elapsed_s']:.0f} s; summary: {summary['study']}/summary.json; report: {report}")


def run_demo(
    out: str | Path, workers: int | None = None, overrides: list[str] = (), progress: bool = True
) -> dict:
    from t2iscale.report.build import build_report

    start = time.perf_counter()
    out = Path(out)
    workers = workers or max(1, min(os.cpu_count() or 1, 4))
    train_ladder(out, workers, list(overrides), progress)
    report = build_report(out, metric=METRIC, progress=progress)
    summary = summarize(out, time.perf_counter() - start)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary, report)
    return summary


DESCRIPTION = """Run the built-in shapes-world scaling study on this machine and report it.

Trains a ladder of UNets of increasing size under one recipe (the `demo` study preset), evaluates them along
training with the oracle TIFA, fits S = a*C^b on the compute Pareto frontier and S = a*N^b on final values, and
writes DIR/report/report.html and DIR/summary.json. About 10 minutes on 2 CPU cores; rerunning resumes.
"""


def register(subparsers):
    from t2iscale.cli import add_command

    parser = add_command(
        subparsers,
        "demo",
        _handle,
        help="the built-in shapes-world study, end to end",
        description=DESCRIPTION,
    )
    parser.add_argument("--out", default="demo-study", help="study folder")
    parser.add_argument("--workers", type=int, help="parallel runner processes (default: cores, at most 4)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a study key"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _handle(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    run_demo(args.out, workers=args.workers, overrides=args.set, progress=not args.quiet)
    return 0

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
# The bars the demo is held to, on every training seed: the trend must be real, not a reading of noise.
MIN_MARGIN_OVER_CHANCE = 0.25  # the largest model's TIFA at least this far above the chance level
MAX_SPEARMAN_P = 0.05  # Spearman(params, TIFA) with an exact (permutation) p below this
MAX_ELAPSED_S = 600.0  # one seed, training to report, on this project's 2-core machine


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
    from t2iscale.progress import ENV as PROGRESS_ENV
    from t2iscale.progress import progress_bar
    from t2iscale.study.plan import load_spec
    from t2iscale.study.runner import register_study

    spec = load_spec(DEMO_PRESET, overrides)
    planned, _ = register_study(spec, out, DEMO_PRESET)
    run_dirs = [out / "runs" / run.run_id for run in planned]
    total_steps = sum(run.config["budget"]["total_steps"] for run in planned)
    threads = max(1, (os.cpu_count() or 2) // workers)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    env[PROGRESS_ENV] = (
        "0"  # the workers write to log files: no bars there (TQDM_DISABLE: third-party bars too)
    )
    logs = [out / f"worker-{index}.log" for index in range(workers)]
    processes = [
        subprocess.Popen(
            _worker_command(out, overrides), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        for log in logs
    ]
    bar = progress_bar(
        total=total_steps,
        enabled=progress,
        desc=f"demo: {len(planned)} runs on {workers} workers",
        unit="step",
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


def summarize(out: Path, elapsed_s: float, factors: list[str], command: str = "t2iscale demo") -> dict:
    """Per model: name, params, final TIFA with its 95% interval and n; the exact Spearman of TIFA with params;
    the fits with intervals; the comparisons of the study's factors; the bars; elapsed seconds."""
    from t2iscale.eval.metrics import metric_info
    from t2iscale.findings.arms import study_configurations
    from t2iscale.findings.compare import compare_factor, to_json
    from t2iscale.findings.laws import frontier_law
    from t2iscale.scaling.correlation import final_value_correlations
    from t2iscale.study.results import load_runs

    runs = {run.run_id: run for run in load_runs(out)}
    study = study_configurations(out, METRIC)
    if study.unevaluated:
        missing = ", ".join(study.unevaluated.values())
        raise UserError(f"models without {METRIC} evaluations: {missing}; rerun `t2iscale demo`")
    value_range = metric_info(METRIC).value_range
    configurations = sorted(study.configurations, key=lambda c: c.params)
    chance = _chance_level(runs[configurations[-1].runs[-1].run_id].run_dir)
    models = []
    for c in configurations:
        curve = c.as_curve()
        estimate = c.estimate(c.final_step, value_range=value_range)
        models.append(
            {
                "name": study.record(c.key).backbone,
                "run_ids": [run.run_id for run in c.runs],
                "params": c.params,
                "gmacs": curve.gmacs,
                "n_seeds": c.n_seeds,
                "final_step": c.final_step,
                # the interval's own value where there is one, so the two never differ in the last bit
                "final_tifa": curve.final_value if estimate is None else estimate.value,
                "final_tifa_interval": None if estimate is None else estimate.to_dict(),
                "final_categories": {
                    name: _category_interval(c, name, values[-1]) for name, values in curve.category.items()
                },
                "images_per_s": [runs[run.run_id].images_per_s for run in c.runs],
            }
        )
    correlations = {
        f"{r.method}_{r.predictor}": {
            "coefficient": r.coefficient,
            "p_value": r.p_value,
            "p_method": r.p_method,
        }
        for r in final_value_correlations([c.as_curve() for c in configurations])
    }
    fits = {axis: frontier_law(configurations, axis, METRIC).to_dict() for axis in ("compute", "params")}
    comparisons = {factor: to_json(study, factor, compare_factor(study, factor), 0.95) for factor in factors}
    largest, smallest = models[-1], models[0]
    spearman = correlations["spearman_params"]
    largest_vs_smallest = _largest_vs_smallest(comparisons.get("backbone"), largest["name"], smallest["name"])
    margin = largest["final_tifa"] - chance
    separated = largest_vs_smallest is not None and largest_vs_smallest["effect"]["lo"] > 0
    return {
        "study": str(out),
        "metric": METRIC,
        "chance_level": chance,
        "models": models,
        "spearman_params_tifa": spearman["coefficient"],
        "spearman_params_tifa_p": spearman["p_value"],
        "correlations": correlations,
        "fits": fits,
        "comparisons": comparisons,
        "largest_vs_smallest": largest_vs_smallest,
        # Self-describing bars (label, value, threshold, pass), as the report's headline reads them.
        "bars": {
            "spearman_p": {
                "label": "exact p of Spearman(params, TIFA), below",
                "value": spearman["p_value"],
                "bar": MAX_SPEARMAN_P,
                "ok": spearman["p_value"] < MAX_SPEARMAN_P,
            },
            "largest_above_smallest": {
                "label": "largest - smallest, lower end of the paired 95% CI, above",
                "value": None if largest_vs_smallest is None else largest_vs_smallest["effect"]["lo"],
                "bar": 0.0,
                "ok": separated,
            },
            "largest_margin_over_chance": {
                "label": "largest model's TIFA over chance, at least",
                "value": margin,
                "bar": MIN_MARGIN_OVER_CHANCE,
                "ok": margin >= MIN_MARGIN_OVER_CHANCE,
            },
            # Judged here on the time to the summary (what the report, built next, can show); `run_demo`
            # re-judges it on the time with the report once that is built (elapsed_with_report_s).
            "elapsed": _elapsed_bar(elapsed_s, "summary"),
        },
        "command": command,
        "elapsed_s": elapsed_s,  # start to summary
    }


def _elapsed_bar(seconds: float, span: str) -> dict:
    return {
        "label": f"seconds from start to {span} on 2 CPU cores, at most",
        "value": seconds,
        "bar": MAX_ELAPSED_S,
        "ok": seconds <= MAX_ELAPSED_S,
    }


def _category_interval(configuration, category: str, value: float) -> dict:
    """A category's final value with its interval over the category's prompts (value only when it has none)."""
    from t2iscale.eval.metrics import metric_info

    try:
        estimate = configuration.estimate(
            configuration.final_step, value_range=metric_info(METRIC).value_range, category=category
        )
    except UserError:  # a category of one prompt has no interval over prompts
        estimate = None
    return {"value": value} if estimate is None else estimate.to_dict()


def _largest_vs_smallest(comparison: dict | None, largest: str, smallest: str) -> dict | None:
    """The paired comparison of the largest and the smallest model at the same step, from the backbone factor."""
    if comparison is None:
        return None
    for pair in comparison["pairs"]:
        if pair["arm_a"]["name"] == largest and pair["arm_b"]["name"] == smallest:
            return next(c for c in pair["comparisons"] if c["matched"] == "step")
    return None


def _chance_level(run_dir: Path) -> float:
    from t2iscale.train.jsonl import read_jsonl

    records = [record for record in read_jsonl(run_dir / "eval" / "eval.jsonl") if record["metric"] == METRIC]
    return float(records[-1]["chance_level"])


def _interval_text(interval: dict | None, value: float) -> str:
    if interval is None:
        return f"{value:.3f}"
    return f"{interval['value']:.3f} [{interval['lo']:.3f}, {interval['hi']:.3f}]"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def print_summary(summary: dict, report: Path) -> None:
    first = next((m["final_tifa_interval"] for m in summary["models"] if m["final_tifa_interval"]), None)
    n_text = (
        f"; 95% intervals over {first['n_prompts']} prompts, {first['n_samples']} images per model"
        if first
        else ""
    )
    print(f"\nfinal TIFA per model (chance {summary['chance_level']:.3f}{n_text}):")
    print(f"{'model':<20} {'params':>12} {'GMACs':>8} {'seeds':>5}  TIFA [95% CI]")
    for model in summary["models"]:
        print(
            f"{model['name']:<20} {model['params']:>12,} {model['gmacs']:>8.4f} {model['n_seeds']:>5}  "
            f"{_interval_text(model['final_tifa_interval'], model['final_tifa'])}"
        )
    bars = summary["bars"]
    spearman = summary["correlations"]["spearman_params"]
    comparison = summary["largest_vs_smallest"]
    effect = comparison["effect"] if comparison is not None else None
    within = (
        " (one training seed: the interval covers prompts and eval seeds only)"
        if effect is not None and min(effect["n_seeds"]) < 2
        else ""
    )
    print("bars:")
    print(
        f"  {_verdict(bars['spearman_p']['ok'])}  Spearman(params, TIFA) = {spearman['coefficient']:.2f}, exact p = "
        f"{spearman['p_value']:.3g} (bar: below {MAX_SPEARMAN_P}; {spearman['p_method']})"
    )
    if effect is not None:
        print(
            f"  {_verdict(bars['largest_above_smallest']['ok'])}  largest - smallest at step {comparison['at']:.0f}: "
            f"{effect['value']:+.3f} [{effect['lo']:+.3f}, {effect['hi']:+.3f}], paired (bar: the interval lies above 0)"
            f"{within}"
        )
    else:
        print(f"  {_verdict(False)}  largest - smallest: not comparable")
    print(
        f"  {_verdict(bars['largest_margin_over_chance']['ok'])}  largest model {bars['largest_margin_over_chance']['value']:+.3f} "
        f"over chance (bar: at least +{MIN_MARGIN_OVER_CHANCE})"
    )
    elapsed = summary.get("elapsed_with_report_s", summary["elapsed_s"])
    print(
        f"  {_verdict(elapsed <= MAX_ELAPSED_S)}  elapsed {elapsed:.0f} s, training, evaluation and report "
        f"(bar: at most {MAX_ELAPSED_S:.0f} s on 2 CPU cores; a rerun that resumes counts only its own time)"
    )
    for axis, fit in summary["fits"].items():
        if "law" not in fit:
            print(f"fit vs {axis}: {fit['error']}")
            continue
        b = fit["params"]["b"]
        print(
            f"fit vs {axis}: {fit['law']}, b in [{b['lo']:.3g}, {b['hi']:.3g}] (95%, {fit['n_runs']} models)"
        )
    print(f"elapsed {elapsed:.0f} s; summary: {summary['study']}/summary.json; report: {report}")


def run_demo(
    out: str | Path, workers: int | None = None, overrides: list[str] = (), progress: bool = True
) -> dict:
    from t2iscale.report.build import build_report
    from t2iscale.study.plan import load_spec

    start = time.perf_counter()
    out = Path(out)
    workers = workers or max(1, min(os.cpu_count() or 1, 4))
    train_ladder(out, workers, list(overrides), progress)
    factors = load_spec(DEMO_PRESET, list(overrides)).factors
    # the summary (with the bars) first: the report shows it
    command = " ".join(["t2iscale", *sys.argv[1:]]) if sys.argv[1:2] == ["demo"] else "t2iscale demo"
    summary = summarize(out, time.perf_counter() - start, factors, command)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report = build_report(out, metric=METRIC, progress=progress)
    summary["elapsed_with_report_s"] = time.perf_counter() - start
    summary["bars"]["elapsed"] = _elapsed_bar(summary["elapsed_with_report_s"], "report")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary, report)
    return summary


DESCRIPTION = """Run the built-in shapes-world scaling study on this machine and report it.

Trains a ladder of UNets of increasing size under one recipe (the `demo` study preset), evaluates them along
training with the oracle TIFA, fits S = a*C^b on the compute Pareto frontier and S = a*N^b on final values, and
writes DIR/report/report.html and DIR/summary.json. About 10 minutes on 2 CPU cores (measured 578 s); rerunning resumes.
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
    parser.add_argument(
        "--out", help="study folder (default: demo-study, or demo-study-seed<S> with --seed S)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="the training seed of every model (default: the preset's); a seed is its own study",
    )
    parser.add_argument("--workers", type=int, help="parallel runner processes (default: cores, at most 4)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a study key"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _handle(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"base.seed={args.seed}")
    out = args.out or ("demo-study" if args.seed is None else f"demo-study-seed{args.seed}")
    run_demo(out, workers=args.workers, overrides=overrides, progress=not args.quiet)
    return 0

"""`t2iscale study run|status|sync|presets`: grid studies with a results database (resumable, idempotent)."""

from __future__ import annotations

import json
import sys

from t2iscale.cli import add_command
from t2iscale.cli_groups import show_commands

RUN_DESCRIPTION = """Run a study: every grid point of a study file (TOML) or preset, under one recipe.

Runs are registered in DIR/study.sqlite and trained by the spec's executor (local, subprocess or slurm).
Running the same command again skips finished runs and resumes unfinished ones; a spec that only adds grid
points adds runs, any other change is refused. Several runners on one DIR never train a run twice. Examples:

  t2iscale study run unet-ablation-mini --dir studies/unet      # a shipped preset (t2iscale study presets)
  t2iscale study run my-study.toml --dry-run                     # runs, params, GMACs, training FLOPs
  t2iscale study run my-study.toml --only 'sdxl-*' --set base.budget.total_steps=200
"""


def register(subparsers):
    parser = add_command(subparsers, "study", show_commands, help="run grid studies (resumable)")
    group = parser.add_subparsers(title="study commands", metavar="COMMAND")

    run = add_command(
        group, "run", _run, help="register and train a study's runs", description=RUN_DESCRIPTION
    )
    run.add_argument("spec", help="study file (.toml/.json) or preset name")
    run.add_argument("--dir", help="study folder (default: studies/<name>)")
    run.add_argument(
        "--only", metavar="PATTERN", help="train only runs whose id matches (glob, or substring)"
    )
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    run.add_argument(
        "--dry-run", action="store_true", help="print the expanded runs and their sizes, train nothing"
    )
    run.add_argument("--retry-diverged", action="store_true", help="train diverged runs again")
    run.add_argument("--resubmit", action="store_true", help="slurm: submit runs already queued again")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--json", action="store_true", help="--dry-run: print JSON")

    status = add_command(group, "status", _status, help="progress per run of a study")
    status.add_argument("dir", help="study folder")
    status.add_argument("--json", action="store_true", help="print JSON")

    sync = add_command(group, "sync", _sync, help="re-import results from the run folders into the database")
    sync.add_argument("dir", help="study folder")

    presets = add_command(group, "presets", _presets, help="list the shipped study presets")
    presets.add_argument("--show", metavar="NAME", help="print one preset's TOML")


def _print_dry_run(rows: list[dict]) -> None:
    width = max([len("run_id"), *(len(row["run_id"]) for row in rows)])
    print(
        f"{'run_id':<{width}}  {'status':<9} {'params':>14} {'GMACs':>10} {'train FLOPs':>12} {'D (noun pairs)':>15}  steps x batch"
    )
    for row in rows:
        pairs = f"{row['dataset_noun_pairs']:,}" if row["dataset_noun_pairs"] is not None else "-"
        print(
            f"{row['run_id']:<{width}}  {row['status']:<9} {row['params']:>14,} {row['gmacs']:>10.4g} "
            f"{row['budget_train_flops']:>12.3e} {pairs:>15}  {row['total_steps']} x {row['global_batch']}"
        )
    notes = sorted({row["note"] for row in rows if row["note"]})
    for note in notes:
        print(f"note: {note}")
    total = sum(row["budget_train_flops"] for row in rows)
    print(f"{len(rows)} runs, {total:.3e} training FLOPs in all")
    for row in rows:
        for problem in row["problems"]:
            print(f"problem: run {row['run_id']}: {problem}")


def _run(args) -> int:
    from t2iscale.study.plan import load_spec
    from t2iscale.study.runner import default_study_dir, dry_run_rows, run_study

    spec = load_spec(args.spec, args.set)
    study_dir = args.dir or default_study_dir(spec, args.spec)
    if args.dry_run:
        rows = dry_run_rows(spec, study_dir, args.only)
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            print(f"study {study_dir} ({spec.executor.kind} executor)")
            _print_dry_run(rows)
        bad = [row["run_id"] for row in rows if row["problems"]]
        if bad:
            # Exit status 1: `study run` would refuse to start (nothing trains while a run has a problem).
            print(
                f"t2iscale study: {len(bad)} of {len(rows)} run(s) have problems; fix them before running",
                file=sys.stderr,
            )
            return 1
        return 0
    report = run_study(
        spec,
        study_dir,
        only=args.only,
        progress=not args.quiet,
        retry_diverged=args.retry_diverged,
        resubmit=args.resubmit,
    )
    if report.added:
        print(f"registered {len(report.added)} new run(s)")
    for outcome in report.outcomes:
        if outcome.outcome not in ("finished", "already finished"):
            print(f"  {outcome.run_id}: {outcome.outcome}{': ' + outcome.message if outcome.message else ''}")
    print(report.summary())
    if not report.ok:
        print(f"t2iscale study: {len(report.failed)} run(s) failed or diverged", file=sys.stderr)
        return 1
    return 0


def _status(args) -> int:
    from t2iscale.study.status import format_status, status_rows

    rows = status_rows(args.dir)
    print(json.dumps(rows, indent=1) if args.json else format_status(args.dir, rows))
    return 0


def _sync(args) -> int:
    from t2iscale.study.runner import sync_study

    counts = sync_study(args.dir)
    print(
        f"study {args.dir}: {counts['evaluations']} evaluation rows imported, "
        f"{counts['marked_finished']} run(s) marked finished, {counts['released_claims']} dead claim(s) released"
    )
    return 0


def _presets(args) -> int:
    from t2iscale.errors import UserError
    from t2iscale.study.spec import preset_names, preset_text

    names = preset_names()
    if args.show:
        if args.show not in names:
            raise UserError(f"unknown study preset {args.show!r}; presets: {', '.join(names)}")
        print(preset_text(args.show), end="")
        return 0
    import tomllib

    for name in names:
        description = tomllib.loads(preset_text(name)).get("description", "")
        print(f"{name:<28} {description.splitlines()[0] if description else ''}")
    return 0

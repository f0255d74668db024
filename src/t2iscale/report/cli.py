"""`t2iscale report`: a study's static HTML report with SVG figures and sample grids."""

from __future__ import annotations

from t2iscale.cli import add_command

DESCRIPTION = """\
Write a study's report: one HTML page with SVG figures beside it, readable offline (no scripts, no
external assets). It opens on a headline, the study's question and its answers: the laws S = a·C^b and
S = a·N^b with the exponent's interval, each compared factor's verdicts beside the paper's direction, the
best model, the study's bars (from summary.json) and the metric's floor (chance) and ceiling (the oracle on
ground-truth renders). Then the findings per factor, the paper's panels (compute frontier, parameters vs
GMACs, data scaling, loss and learning rate, images/s and MFU, per-category results with chance lines), the
runs table, the sample grid with its prompts, and provenance. Every per-image metric value (TIFA, CLIP score)
is shown with its 95% interval and its n; laws, correlations and comparisons pool the runs that differ only
in the training seed into configurations. Runs still training or failed appear with their status.

  t2iscale report --study studies/ladder
  t2iscale report --study studies/ladder --out /tmp/ladder/report.html --metric clip
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "report", handle, help="write a study's HTML report", description=DESCRIPTION
    )
    parser.add_argument("--study", required=True, metavar="DIR", help="the study folder")
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="the HTML file to write (default: <study>/report/report.html); its SVG figures and sample PNGs go beside it",
    )
    parser.add_argument("--metric", default="tifa", help="the metric of the plots and fits")
    parser.add_argument(
        "--sample-columns", type=int, default=8, metavar="N", help="prompts per run in the sample grid"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def command_line(args) -> str:
    """The command as it was given (options in a fixed order), for the report's provenance."""
    import shlex

    words = ["t2iscale", "report", "--study", str(args.study)]
    if args.out is not None:
        words += ["--out", str(args.out)]
    if args.metric != "tifa":
        words += ["--metric", args.metric]
    if args.sample_columns != 8:
        words += ["--sample-columns", str(args.sample_columns)]
    return shlex.join(words + (["--quiet"] if args.quiet else []))


def handle(args) -> int:
    from t2iscale.report.build import build_report

    path = build_report(
        args.study,
        out=args.out,
        metric=args.metric,
        sample_columns=args.sample_columns,
        progress=not args.quiet,
        command=command_line(args),
    )
    print(f"report written to {path}")
    return 0

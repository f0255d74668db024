"""`t2iscale report`: a study's static HTML report with PNG plots and sample grids."""

from __future__ import annotations

from t2iscale.cli import add_command

DESCRIPTION = """\
Write a study's report: one HTML page with PNG plots beside it, readable offline (no scripts, no
external assets). It shows the runs table, alignment along training, the compute law S = a·C^b on the
Pareto frontier with a t interval for each parameter, parameters vs GMACs, data scaling when the study
varies the data size, per-category results and sample grids. Every per-image metric value (TIFA, CLIP score)
is shown with its 95% interval and its n; the laws and correlations pool the runs that differ only in the
training seed into configurations. Runs still training or failed appear with their status.

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
        help="the HTML file to write, its PNGs beside it; None: <study>/report/report.html",
    )
    parser.add_argument("--metric", default="tifa", help="the metric of the plots and fits")
    parser.add_argument(
        "--sample-columns", type=int, default=8, metavar="N", help="prompts per run in the sample grid"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def handle(args) -> int:
    from t2iscale.report.build import build_report

    path = build_report(
        args.study,
        out=args.out,
        metric=args.metric,
        sample_columns=args.sample_columns,
        progress=not args.quiet,
    )
    print(f"report written to {path}")
    return 0

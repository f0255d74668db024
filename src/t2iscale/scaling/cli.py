"""`t2iscale fit`, `t2iscale predict`, `t2iscale correlate`: scaling laws from a study or a points file.

Everything here is numpy/scipy; the study loader is imported inside the handlers (it belongs to
`t2iscale.study`, which may need more than this package).
"""

from __future__ import annotations

import argparse
import json
import math

from t2iscale.cli import add_command
from t2iscale.errors import UserError

FIT_DESCRIPTION = """\
Fit S = a·X^b (or S = S∞ − a·X^(−b)) to a study's results, on the Pareto frontier by default, with
bootstrap percentile intervals for every parameter (Li et al., CVPR 2024, Sec. 6).

  --x compute   X = training FLOPs, every evaluation of every run (the paper's S = a·C^b)
  --x params    X = parameters N, each run's final evaluation
  --x data      X = training-set image-noun pairs D, each run's final evaluation
"""


def _add_source_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--study", metavar="DIR", help="a study directory (its results database)")
    source.add_argument(
        "--points", metavar="FILE", help="a .json or .csv file of curves (see t2iscale.scaling.points)"
    )
    parser.add_argument("--metric", default="tifa", help="which metric's curves to use (higher is better)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _add_fit_arguments(parser) -> None:
    _add_source_arguments(parser)
    parser.add_argument(
        "--x", required=True, choices=["compute", "params", "data"], help="the scaling axis X"
    )
    parser.add_argument("--form", default="power", choices=["power", "saturating"], help="the law's form")
    parser.add_argument(
        "--frontier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit only the Pareto-frontier points (as the paper does) or every point",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples (0: none)"
    )
    parser.add_argument("--ci", type=float, default=0.95, help="confidence level of the percentile intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")


def register(subparsers) -> None:
    fit = add_command(
        subparsers, "fit", _run_fit, "fit a scaling law with bootstrap intervals", FIT_DESCRIPTION
    )
    _add_fit_arguments(fit)
    predict = add_command(
        subparsers, "predict", _run_predict, "predict the metric at a new X from a fitted scaling law"
    )
    _add_fit_arguments(predict)
    predict.add_argument(
        "--at", required=True, type=float, metavar="X", help="the X to predict at (e.g. 1e22)"
    )
    correlate = add_command(
        subparsers,
        "correlate",
        _run_correlate,
        "correlate final metric with parameters and with GMACs (paper Fig. 10)",
    )
    _add_source_arguments(correlate)


def _load_curves(args):
    if args.points is not None:
        from t2iscale.scaling.points import load_points

        return load_points(args.points, metric=args.metric)
    try:
        from t2iscale.study.results import load_curves
    except ImportError as error:
        raise UserError(
            f"study results are not available in this installation ({error}); use --points FILE"
        ) from None
    curves = load_curves(args.study, args.metric)
    if not curves:
        raise UserError(f"{args.study}: no evaluated runs for metric {args.metric!r}")
    return curves


def _fit_from_args(args):
    from t2iscale.scaling.fits import FitError, fit_law
    from t2iscale.scaling.frontier import pareto_frontier
    from t2iscale.scaling.points import AXES, scaling_points

    candidates = scaling_points(_load_curves(args), args.x)
    points = (
        pareto_frontier(candidates)
        if args.frontier
        else sorted(candidates, key=lambda p: (p.x, p.run_id, p.step))
    )
    try:
        fit = fit_law(
            [p.x for p in points],
            [p.value for p in points],
            form=args.form,
            bootstrap=args.bootstrap,
            ci_level=args.ci,
            seed=args.seed,
        )
    except FitError as error:
        which = "Pareto-frontier points" if args.frontier else "points"
        raise FitError(
            f"fit on {len(points)} {which} (of {len(candidates)}) on --x {args.x}: {error}"
        ) from None
    return AXES[args.x], fit, points, len(candidates)


def _fit_summary(args, axis, fit, points, n_candidates) -> dict:
    return {
        "axis": axis.name,
        "symbol": axis.symbol,
        "x_description": axis.description,
        "metric": args.metric,
        "frontier": args.frontier,
        "law": fit.render(axis.symbol),
        **fit.to_dict(),
        "n_candidate_points": n_candidates,
        "points": [
            {"run_id": p.run_id, "label": p.label, "step": p.step, "x": p.x, "value": p.value} for p in points
        ],
    }


def _interval_text(interval, level) -> str:
    if interval is None:
        return "(no bootstrap)"
    return f"{level:.0%} CI [{interval[0]:.4g}, {interval[1]:.4g}]"


def _run_fit(args) -> int:
    axis, fit, points, n_candidates = _fit_from_args(args)
    if args.json:
        print(json.dumps(_fit_summary(args, axis, fit, points, n_candidates), indent=1))
        return 0
    which = "Pareto-frontier points" if args.frontier else "points"
    print(
        f"{fit.render(axis.symbol)}    ({args.form} law, {args.metric} vs {axis.symbol} = {axis.description})"
    )
    for name in fit.param_names:
        print(f"  {name:<6} {fit.params[name]:<12.6g} {_interval_text(fit.interval(name), fit.ci_level)}")
    print(f"  R² {fit.r2:.4f}   RMSE {fit.rmse:.4g}   fit on {len(points)} {which} of {n_candidates}")
    if fit.n_bootstrap:
        print(f"  bootstrap: B={fit.n_bootstrap} (failed refits: {fit.n_bootstrap_failed}), seed {fit.seed}")
    print("points used:")
    print(f"  {'run_id':<24} {'step':>8} {axis.symbol:>12} {'S':>10}  label")
    for p in points:
        print(f"  {p.run_id:<24} {p.step:>8} {p.x:>12.4g} {p.value:>10.4f}  {p.label}")
    return 0


def _run_predict(args) -> int:
    from t2iscale.scaling.fits import predict

    if not (math.isfinite(args.at) and args.at > 0):
        raise UserError(f"--at must be a finite positive X, got {args.at}")
    axis, fit, points, n_candidates = _fit_from_args(args)
    value, lo, hi = predict(fit, args.at)
    largest = max(p.x for p in points)
    extrapolation = args.at / largest if args.at > largest else None
    if args.json:
        summary = _fit_summary(args, axis, fit, points, n_candidates)
        summary.pop("points")
        prediction = {
            "at": args.at,
            "value": value,
            "lo": None if math.isnan(lo) else lo,
            "hi": None if math.isnan(hi) else hi,
            "extrapolation_factor": extrapolation,
        }
        print(json.dumps({"prediction": prediction, "fit": summary}, indent=1))
        return 0
    print(
        f"S({axis.symbol} = {args.at:.4g}) = {value:.4f}   {_interval_text(None if math.isnan(lo) else (lo, hi), fit.ci_level)}"
    )
    print(f"  from {fit.render(axis.symbol)}   (R² {fit.r2:.4f}, {len(points)} points, B={fit.n_bootstrap})")
    if extrapolation:
        print(
            f"  note: extrapolation, {extrapolation:.3g}x beyond the largest fitted {axis.symbol} ({largest:.4g})"
        )
    return 0


def _run_correlate(args) -> int:
    from t2iscale.scaling.correlation import final_value_correlations

    curves = _load_curves(args)
    results = final_value_correlations(curves)
    if args.json:
        print(json.dumps({"metric": args.metric, "correlations": [r.to_dict() for r in results]}, indent=1))
        return 0
    print(f"final {args.metric} of {len(curves)} runs vs size (Pearson on log size):")
    for r in results:
        print(f"  {r.predictor:<7} {r.method:<9} r = {r.coefficient:+.4f}   p = {r.p_value:.3g}")
    return 0

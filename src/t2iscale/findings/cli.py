"""`t2iscale compare`, `fit`, `predict`, `correlate`: a study's (or a points file's) findings and scaling laws.

A study is read as configurations (runs pooled over training seeds): a fit has one point per configuration and
evaluation, a correlation one per configuration, and every printed value carries its interval and n. Everything
heavy is imported inside the handlers, so `t2iscale --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace

from t2iscale.cli import add_command
from t2iscale.errors import UserError

FIT_DESCRIPTION = """\
Fit S = a·X^b (or S = S∞ − a·X^(−b)) to a study's results with t intervals for every parameter (Li et al., CVPR
2024, Sec. 6). A study's runs that differ only in the training seed are averaged into one configuration first;
when a configuration gives several points (the compute frontier), they count as one cluster.

  --x compute   X = training FLOPs, every evaluation of every configuration, on the Pareto frontier by default
                (the paper's S = a·C^b: the best alignment reached with that much compute)
  --x params    X = parameters N, each configuration's final evaluation, every configuration by default
  --x data      X = the training set's size D, each configuration's final evaluation, every one by default;
                D is image-noun pairs where every run has them (the shapes world; prepared data counted with
                `data prepare --noun-tagger`), else the dataset size in images (--data-measure chooses; the
                law's line says which D it used)

A study that varies other grid axes too (several [[grids]], e.g. the `findings` preset) is fitted within one
group of configurations that differ only along X's own axis (N and C: the backbone; D: the dataset size): the
group with the most configurations, or the one --where names (--where caption_policy=mix). The output says which.
"""

COMPARE_DESCRIPTION = """\
Compare the arms of one factor of a study: each pair of arms, A − B in the metric at the same step, at matched
training compute and at matched parameters (reading an arm between its evaluations, or between the backbones of a
ladder, by interpolating in log X; never extrapolating), paired by prompt and eval seed. Each difference has a
95% interval over prompts and training seeds, a p-value, an exact permutation p where the design has one, a
verdict ("A > B", "B > A" or "not separable at this budget") and, where the paper states a direction, that
direction (F1 layout Sec. 4.1, F2 TD vs C Sec. 4.2, F3 captions Table 4, F4 data Sec. 5-6).

Factors: backbone, dataset_size, caption_policy (grid axes); layout (SD2 vs SDXL vs IF layouts, each a ladder of
its backbones); scaling (an SDXL channel ladder C against a transformer-depth ladder TD through one reference).
"""


def _add_source_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--study", metavar="DIR", help="a study directory (its results database)")
    source.add_argument(
        "--points", metavar="FILE", help="a .json or .csv file of curves (see t2iscale.scaling.points)"
    )
    parser.add_argument("--metric", default="tifa", help="which metric's curves to use (higher is better)")
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="AXIS=VALUE",
        help="--study: use the configurations with this grid value (backbone, dataset_size, caption_policy); "
        "default: the largest group that varies only along X's axis",
    )
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
        default=None,
        help="fit only the Pareto-frontier points or every point (default: the frontier for compute, every "
        "configuration for params and data, where a frontier would bias the exponent)",
    )
    parser.add_argument("--ci", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument(
        "--data-measure",
        default="auto",
        choices=["auto", "noun_pairs", "images", "images_seen"],
        help="--x data: what D counts (auto: image-noun pairs where every run has them, else dataset images)",
    )


def register(subparsers) -> None:
    compare = add_command(
        subparsers,
        "compare",
        _run_compare,
        "compare a factor's arms: paired differences with intervals and verdicts",
        COMPARE_DESCRIPTION,
    )
    compare.add_argument("--study", metavar="DIR", required=True, help="a study directory")
    compare.add_argument("--by", required=True, metavar="FACTOR", help="the factor whose arms are compared")
    compare.add_argument("--metric", default="tifa", help="a per-image metric (tifa, clip)")
    compare.add_argument("--ci", type=float, default=0.95, help="confidence level of the intervals")
    compare.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    fit = add_command(subparsers, "fit", _run_fit, "fit a scaling law with intervals", FIT_DESCRIPTION)
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
        "correlate final metric with parameters and with GMACs (paper Fig. 10), exact p for few points",
    )
    _add_source_arguments(correlate)


# -- sources ------------------------------------------------------------------------------------------------


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise UserError(f"--ci must lie strictly between 0 and 1, got {level}")


@dataclass(frozen=True)
class Source:
    """What `fit`, `predict` and `correlate` read: configurations, the chance level, the runs left out."""

    configurations: list
    chance_level: float | None = None
    left_out: tuple[str, ...] = ()
    scope: object = None  # t2iscale.findings.arms.LawScope of a study's configurations

    def notes(self) -> list[str]:
        if not self.left_out:
            return []
        return [f"left out (no evaluation of this metric): {'; '.join(self.left_out)}"]


def load_source(args, axis: str) -> Source:
    """A study's runs pooled over seeds, within the scope of a law on `axis` (`law_scope`: the configurations
    that differ only along the axis's grid factor, or those --where names), or each curve of a points file as its
    own configuration."""
    from t2iscale.eval.metrics import metric_info
    from t2iscale.scaling.arms import Configuration

    if args.points is not None:
        from t2iscale.scaling.points import load_points

        if args.where:
            raise UserError("--where selects a study's configurations; a points file has no grid axes")

        curves = load_points(args.points, metric=args.metric)
        info = metric_info(args.metric)
        for curve in curves:
            outside = [(step, v) for step, v in zip(curve.steps, curve.values) if not info.lo <= v <= info.hi]
            if outside:
                step, value = outside[0]
                raise UserError(
                    f"{args.points}: run {curve.run_id!r} has {info.title} {value:g} at step {step}, outside the "
                    f"metric's range {info.range_text()}"
                )
        return Source([Configuration(c.run_id, c.label, (c,)) for c in curves])
    from t2iscale.findings.arms import law_scope, parse_where, study_configurations

    where = parse_where(args.where)
    study = study_configurations(args.study, args.metric)
    scope = law_scope(study, axis, where)
    return Source(scope.configurations, study.chance_level, tuple(study.left_out), scope)


def _interval_text(estimate) -> str:
    return "-" if estimate is None else estimate.text(4)


# -- compare --------------------------------------------------------------------------------------------------


def _run_compare(args) -> int:
    from t2iscale.eval.metrics import metric_info
    from t2iscale.findings.arms import study_configurations
    from t2iscale.findings.compare import compare_factor, render_text, to_json

    _check_level(args.ci)
    if not metric_info(args.metric).per_sample:
        raise UserError(
            f"--metric {args.metric}: a set statistic has no per-image scores to pair; use tifa or clip"
        )
    study = study_configurations(args.study, args.metric)
    results = compare_factor(study, args.by, args.ci)
    if args.json:
        print(json.dumps(to_json(study, args.by, results, args.ci), indent=1))
    else:
        print(render_text(study, args.by, results, args.ci))
    return 0


# -- fit / predict --------------------------------------------------------------------------------------------


def _fit_from_args(args):
    from t2iscale.findings.laws import fit_configurations

    _check_level(args.ci)
    source = load_source(args, args.x)
    law = fit_configurations(
        source.configurations,
        args.x,
        args.metric,
        args.form,
        args.frontier,
        args.ci,
        source.chance_level,
        data_measure=args.data_measure,
    )
    if source.scope is not None:
        law = replace(law, scope=source.scope.text(), scope_left_out=tuple(source.scope.left_out))
    return law, source


def _run_fit(args) -> int:
    law, source = _fit_from_args(args)
    if args.json:
        print(json.dumps({**law.to_dict(), "left_out": list(source.left_out)}, indent=1))
        return 0
    print("\n".join(law.text_lines() + source.notes()))
    return 0


def _run_predict(args) -> int:
    import math

    from t2iscale.eval.metrics import metric_info
    from t2iscale.scaling.fits import predict

    if not (math.isfinite(args.at) and args.at > 0):
        raise UserError(f"--at must be a finite positive X, got {args.at}")
    law, source = _fit_from_args(args)
    info = metric_info(args.metric)
    prediction = predict(law.fit, args.at, info.value_range)
    smallest, largest = min(p.x for p in law.points), max(p.x for p in law.points)
    # > 1: that many times beyond the largest fitted X; < 1: that fraction of the smallest
    extrapolation = (
        args.at / largest if args.at > largest else args.at / smallest if args.at < smallest else None
    )
    chance = law.chance_level
    if args.json:
        summary = law.to_dict()
        summary.pop("points")
        print(
            json.dumps(
                {
                    "prediction": {
                        "at": args.at,
                        "value": prediction.value,
                        "lo": prediction.lo,
                        "hi": prediction.hi,
                        "df": prediction.df,
                        "interval_of": "the law's value at X (the mean over runs), not one new run",
                        "clipped_to_range": prediction.clipped,
                        "metric_range": [info.lo, info.hi],
                        "extrapolation_factor": extrapolation,
                        "chance_level": chance,
                    },
                    "fit": summary,
                },
                indent=1,
            )
        )
        return 0
    symbol = law.axis.symbol
    print(
        f"S({symbol} = {args.at:.4g}) = {prediction.value:.4f}   {law.fit.ci_level:.0%} CI "
        f"[{prediction.lo:.4f}, {prediction.hi:.4f}] (of the law's value there, not of one new run)"
    )
    print(
        f"  from {law.fit.render(symbol)}   (R² {law.fit.r2:.4f}, {len(law.points)} points of "
        f"{law.fit.n_clusters} configurations)"
    )
    if prediction.clipped:
        print(f"  note: the interval is clipped to the {info.title} range {info.range_text()}")
    if extrapolation and extrapolation > 1:
        print(
            f"  note: extrapolation, {extrapolation:.3g}x beyond the largest fitted {symbol} ({largest:.4g})"
        )
    elif extrapolation:
        print(
            f"  note: extrapolation, {1 / extrapolation:.3g}x below the smallest fitted {symbol} ({smallest:.4g})"
        )
    if chance is not None:
        below = "; the prediction is below it" if prediction.value < chance else ""
        print(f"  reference: chance level {chance:.4f} (a reference line, not a bound{below})")
    return 0


# -- correlate ------------------------------------------------------------------------------------------------


def _run_correlate(args) -> int:
    from t2iscale.eval.metrics import metric_info
    from t2iscale.scaling.correlation import final_value_correlations

    source = load_source(args, "params")
    configurations = source.configurations
    curves = [c.as_curve() for c in configurations]
    results = final_value_correlations(curves)
    info = metric_info(args.metric)
    finals = [c.estimate(c.final_step, value_range=info.value_range) for c in configurations]
    if args.json:
        points = [
            {
                "configuration": c.label,
                "params": c.params,
                "gmacs": curve.gmacs,
                "n_seeds": c.n_seeds,
                "final_step": c.final_step,
                "value": curve.final_value,
                "interval": None if estimate is None else estimate.to_dict(),
            }
            for c, curve, estimate in zip(configurations, curves, finals)
        ]
        print(
            json.dumps(
                {
                    "metric": args.metric,
                    "points": points,
                    "correlations": [r.to_dict() for r in results],
                    "left_out": list(source.left_out),
                    "scope": source.scope.text() if source.scope else None,
                },
                indent=1,
            )
        )
        return 0
    print(f"final {info.title} of {len(curves)} configurations (mean over training seeds, 95% interval):")
    print(f"  {'configuration':<28} {'params':>12} {'GMACs':>10} {'seeds':>5}  value")
    for c, curve, estimate in zip(configurations, curves, finals):
        value = _interval_text(estimate) if estimate is not None else f"{curve.final_value:.4f} (no interval)"
        print(f"  {c.label:<28} {c.params or 0:>12,} {curve.gmacs or 0:>10.4g} {c.n_seeds:>5}  {value}")
    print("vs size (Spearman; Pearson on log size):")
    for r in results:
        print(
            f"  {r.predictor:<7} {r.method:<9} r = {r.coefficient:+.4f}   p = {r.p_value:.3g}   ({r.p_method})"
        )
    if source.scope is not None and source.scope.text():
        print(
            f"configurations where {source.scope.text()} ({len(source.scope.left_out)} at other values left out)"
        )
    for note in source.notes():
        print(note)
    return 0

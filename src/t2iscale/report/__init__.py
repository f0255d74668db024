"""The study report: a static HTML page with SVG figures and a sample grid, readable offline (DESIGN.md "Results").

It sits at the end of the data flow (zoo -> train -> eval -> study -> scaling -> findings -> report) and reads a
study only through `t2iscale.study.results`, `t2iscale.findings` and the run folders that API points at (eval
logs, image manifests, training logs), plus `<study>/summary.json` when a driver wrote one.

- `collect`:     the study's runs, curves per metric, chance level, configurations (runs pooled over training
                 seeds, `t2iscale.findings.arms`), training logs, stored spec and times, as one `StudyData`.
- `analyses`:    what several sections share, computed once: laws (`t2iscale.findings.laws.frontier_law`),
                 comparisons (`t2iscale.findings.compare.compare_factor`), the best configuration, floor and
                 ceiling (`reference`), one color per configuration.
- `reference`:   the metric's floor (chance, per category too) and ceiling (the shapes oracle on ground-truth
                 renders, `t2iscale.eval.oracle_check`), and ground-truth renders for the sample grid.
- `headline`:    the question and its answers, first on the page.
- `comparisons`: one findings panel per compared factor.
- `build`:       `build_report(study_dir, out=None, metric="tifa") -> Path`, the paper-style sections, the runs
                 table and the sample grid; `provenance`: spec, commands, versions, machine, wall-clock.
- `samples`:     the sample grid's images (rows = runs by size, columns = fixed prompts at one eval seed).
- `plots`:       matplotlib figures written as SVG; `html`: string templates, every text escaped; `fmt`: numbers.
- `browser`:     the check in headless Chromium (`make report-check`, `python -m t2iscale.report.browser`).

Importing this package is cheap (the CLI imports `t2iscale.report.cli`); matplotlib loads in `plots`.
"""

from __future__ import annotations


def build_report(*args, **kwargs):
    """See `t2iscale.report.build.build_report` (imported on first call: it loads matplotlib)."""
    from t2iscale.report.build import build_report as build

    return build(*args, **kwargs)


__all__ = ["build_report"]

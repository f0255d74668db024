"""The study report: a static HTML page with PNG plots and sample grids, readable offline (DESIGN.md "Results").

It sits at the end of the data flow (zoo -> train -> eval -> study -> scaling -> findings -> report) and reads a
study only through `t2iscale.study.results`, `t2iscale.findings` and the run folders that API points at (eval
logs, image manifests).

- `collect`: the study's runs, curves per metric, chance level, and the report metric's configurations (runs
             pooled over training seeds, `t2iscale.findings.arms`), as one `StudyData`.
- The paper's analyses come from `t2iscale.findings.laws.frontier_law` (compute and data laws on the Pareto
  frontier, with t intervals; a fit that cannot be made is a reason) and `t2iscale.scaling.correlation`
  (final alignment vs parameters and GMACs).
- `samples`: the sample grid (rows = runs by size, columns = fixed prompts and seeds, last evaluated step).
- `plots`:   matplotlib (Agg) figures written as PNG.
- `html`:    string templates; every text is escaped.
- `build`:   `build_report(study_dir, out=None, metric="tifa") -> Path`, which ties them together.

Importing this package is cheap (the CLI imports `t2iscale.report.cli`); matplotlib loads in `plots`.
"""

from __future__ import annotations


def build_report(*args, **kwargs):
    """See `t2iscale.report.build.build_report` (imported on first call: it loads matplotlib)."""
    from t2iscale.report.build import build_report as build

    return build(*args, **kwargs)


__all__ = ["build_report"]

"""The study report: a static HTML page with PNG plots and sample grids, readable offline (DESIGN.md "Results").

It sits at the end of the data flow (zoo -> train -> eval -> study -> scaling -> report) and reads a study only
through `t2iscale.study.results` plus the run folders that API points at (eval logs, image manifests).

- `collect`: the study's runs, curves per metric, chance level (one `StudyData`).
- `laws`:    the paper's analyses on those curves (Sec. 4 and 6): compute and data laws on the Pareto frontier,
             correlations of final alignment with parameters and GMACs; a fit that cannot be made is a reason.
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

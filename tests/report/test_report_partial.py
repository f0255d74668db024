"""Partial studies: failed and unevaluated runs still render; nothing to report on is a clear UserError."""

from __future__ import annotations

import pytest
from report_html_check import check_local_images, page_text, parse_page
from report_study import add_unevaluated_run, copy_study, mark_failed

from t2iscale.errors import UserError
from t2iscale.report.build import build_report
from t2iscale.report.collect import collect_study
from t2iscale.report.samples import collect_samples


def test_failed_and_unevaluated_runs_appear_with_their_status(tiny_study, tmp_path):
    study = copy_study(tiny_study, tmp_path / "study")
    mark_failed(study, "large")
    add_unevaluated_run(study, "newcomer", "sdxl-c8-td1_1")
    path = build_report(study, bootstrap=50, progress=False)
    page = parse_page(path)
    check_local_images(path, page)
    text = page_text(page)
    assert "3 runs (1 failed, 1 finished, 1 running); 2 evaluated on tifa" in text
    header = page.rows[0]
    status, final = header.index("status"), header.index("final tifa")
    newcomer = page.row("newcomer")  # in the runs table, though it has no evaluation
    assert newcomer[status] == "running" and newcomer[final] == "—"
    assert newcomer[header.index("last eval step")] == "—"
    large = page.row("large")  # a failed run keeps the evaluations it made
    assert large[status] == "failed" and large[final] != "—"
    data = collect_study(study)
    assert [c.run_id for c in data.curves] == ["small", "large"]
    assert [row.run_id for row in collect_samples(data).rows] == ["small", "large"]


def test_study_with_only_unevaluated_runs_is_a_clear_error(tmp_path):
    add_unevaluated_run(tmp_path, "only", "sdxl-c8-td1_1")
    with pytest.raises(UserError, match=r"has no evaluations yet \(1 runs: 1 running\)"):
        build_report(tmp_path, progress=False)


def test_unknown_metric_names_the_study_metrics(tiny_study, tmp_path):
    with pytest.raises(UserError, match=r"no evaluations of metric 'clip'; its metrics: tifa"):
        build_report(tiny_study, out=tmp_path / "r.html", metric="clip", progress=False)


def test_missing_study_folder_and_bad_output_name(tiny_study, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_report(tmp_path / "nowhere", progress=False)
    with pytest.raises(UserError, match=r"expected a name ending in \.html"):
        build_report(tiny_study, out=tmp_path / "report.pdf", progress=False)


def test_run_without_sample_images_is_noted_not_fatal(tiny_study, tmp_path):
    study = copy_study(tiny_study, tmp_path / "study")
    for step_dir in (study / "runs" / "small" / "eval").glob("step_*"):
        (step_dir / "manifest.jsonl").unlink()
    path = build_report(study, bootstrap=0, progress=False)
    page = parse_page(path)
    check_local_images(path, page)
    text = page_text(page)
    assert "small: no sample images on disk for its evaluated steps" in text
    assert "samples.png" in {src for src in page.images}  # the other run still has its row

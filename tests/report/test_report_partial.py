"""Partial studies: failed and unevaluated runs still render; nothing to report on is a clear UserError."""

from __future__ import annotations

import re

import pytest
from report_html_check import check_local_images, page_text, parse_page
from report_study import add_pending_run, copy_study, mark_failed, register_only, run_ids

from t2iscale.errors import UserError
from t2iscale.report.build import build_report
from t2iscale.report.collect import collect_study
from t2iscale.report.samples import collect_samples
from t2iscale.study.registry import StudyRegistry


def test_failed_and_unevaluated_runs_appear_with_their_status(tiny_study, tmp_path):
    study = copy_study(tiny_study, tmp_path / "study")
    ids = run_ids(study)
    mark_failed(study, ids["large"])
    newcomer_id = add_pending_run(study)
    path = build_report(study, progress=False)
    page = parse_page(path)
    check_local_images(path, page)
    text = page_text(page)
    assert "3 runs (1 failed, 1 finished, 1 pending); 2 evaluated on tifa" in text
    header = page.table("run")[0]
    status, final = header.index("status"), header.index("final tifa")
    newcomer = page.row(newcomer_id)  # in the runs table, though it has no evaluation
    assert newcomer[status] == "pending" and newcomer[final] == "—"
    assert newcomer[header.index("last eval step")] == "—"
    large = page.row(ids["large"])  # a failed run keeps the evaluations it made, with their interval
    assert large[status] == "failed" and large[final] != "—" and " [" in large[final]
    data = collect_study(study)
    assert [c.run_id for c in data.curves] == [ids["small"], ids["large"]]
    assert [row.run_id for row in collect_samples(data).rows] == [ids["small"], ids["large"]]


def test_study_with_no_evaluations_is_a_clear_error(tmp_path):
    study = register_only(tmp_path / "study")
    with pytest.raises(UserError, match=r"has no evaluations yet \(2 runs: 2 pending\)"):
        build_report(study, progress=False)


def test_unknown_metric_names_the_study_metrics(tiny_study, tmp_path):
    with pytest.raises(UserError, match=r"no evaluations of metric 'clip'; its metrics: tifa"):
        build_report(tiny_study, out=tmp_path / "r.html", metric="clip", progress=False)


def test_missing_study_folder_and_bad_output_name(tiny_study, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_report(tmp_path / "nowhere", progress=False)
    with pytest.raises(UserError, match="is not a study folder"):
        build_report(tmp_path, progress=False)
    with pytest.raises(UserError, match=r"expected a name ending in \.html"):
        build_report(tiny_study, out=tmp_path / "report.pdf", progress=False)


def test_a_report_that_could_not_be_written_is_refused_before_the_study_is_read(
    tiny_study, tmp_path, monkeypatch
):
    # As on a colleague's study that is read-only to this user (CI runs as root, where modes do not stop writes).
    monkeypatch.setattr("t2iscale.file_modes._can_write", lambda path: False)
    monkeypatch.setattr(
        "t2iscale.report.build.collect_study",
        lambda *args: pytest.fail("the study was read before the check"),
    )
    default = tiny_study / "report" / "report.html"
    with pytest.raises(UserError, match=re.escape(f"cannot write the report {default}: permission denied")):
        build_report(tiny_study, progress=False)
    existing = tmp_path / "theirs.html"  # a file in a writable folder may still not be ours to overwrite
    existing.write_text("")
    with pytest.raises(UserError, match=re.escape(f"cannot write the report {existing}: permission denied")):
        build_report(tiny_study, out=existing, progress=False)


def test_run_without_sample_images_is_noted_not_fatal(tiny_study, tmp_path):
    study = copy_study(tiny_study, tmp_path / "study")
    small = run_ids(study)["small"]
    for step_dir in (study / "runs" / small / "eval").glob("step_*"):
        (step_dir / "manifest.jsonl").unlink()
    path = build_report(study, progress=False)
    page = parse_page(path)
    check_local_images(path, page)
    text = page_text(page)
    assert f"{small}: no sample images on disk for its evaluated steps" in text
    assert any(src.startswith("samples/run") for src in page.images)  # the other run still has its row


def test_study_evaluated_before_samples_were_kept_prints_values_without_interval(tiny_study, tmp_path):
    study = copy_study(tiny_study, tmp_path / "study")
    with StudyRegistry(study) as registry, registry.transaction() as db:
        db.execute("UPDATE evaluations SET samples = NULL")
    path = build_report(study, progress=False)
    page = parse_page(path)
    check_local_images(path, page)
    data = collect_study(study)
    final = page.table("run")[0].index("final tifa")
    for curve in data.curves:
        assert page.row(curve.run_id)[final] == f"{curve.final_value:.3f}"  # the value, no interval
    text = page_text(page)
    assert "Final values of TIFA without an interval: evaluated before per-image scores were kept." in text
    assert "point(s) have no interval: their evaluations kept no per-image scores" in text

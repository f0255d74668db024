"""`t2iscale report` end to end, through the real argument parser and error handling."""

from __future__ import annotations

from report_html_check import check_local_images, page_text, parse_page
from report_study import register_only, run_ids

from t2iscale.cli import main


def test_report_command_writes_the_page(tiny_study, tmp_path, capsys):
    out = tmp_path / "site" / "index.html"
    code = main(["report", "--study", str(tiny_study), "--out", str(out), "--quiet"])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"report written to {out}"
    page = parse_page(out)
    files = check_local_images(out, page)
    assert all(file.parent in (out.parent, out.parent / "samples") for file in files)
    assert "this report: t2iscale report --study" in page.text_of("provenance")
    assert all(run_id in page_text(page) for run_id in run_ids(tiny_study).values())


def test_report_command_default_output(tiny_study, capsys):
    assert main(["report", "--study", str(tiny_study), "--sample-columns", "2", "--quiet"]) == 0
    assert (tiny_study / "report" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_report_command_errors_are_one_line(tmp_path, capsys):
    study = register_only(tmp_path / "study")
    assert main(["report", "--study", str(study), "--quiet"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("t2iscale: error: study") and "has no evaluations yet" in error
    assert "\n" not in error


def test_report_help_lists_the_options(capsys):
    try:
        main(["report", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    help_text = capsys.readouterr().out
    for option in ("--study", "--out", "--metric", "--sample-columns"):
        assert option in help_text
    assert "(default: tifa)" in help_text
    assert "bootstrap" not in help_text.lower() and "--seed" not in help_text
    assert "95% interval" in " ".join(help_text.split())


def test_report_command_refuses_the_removed_bootstrap_options(tiny_study, capsys):
    for option in (["--bootstrap", "50"], ["--seed", "1"]):
        try:
            code = main(["report", "--study", str(tiny_study), "--quiet", *option])
        except SystemExit as exit_:
            code = exit_.code
        assert code == 2, option
        assert "unrecognized arguments" in capsys.readouterr().err

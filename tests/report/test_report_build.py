"""The report of a real tiny study (two runs trained and evaluated by the real loop)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from report_html_check import check_local_images, page_text, parse_page
from report_study import BACKBONES, run_ids

from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.manifest import load_image, read_manifest
from t2iscale.report import fmt
from t2iscale.report.build import build_report, default_out
from t2iscale.report.collect import collect_study
from t2iscale.report.samples import GRID_PAD_PX, collect_samples


@pytest.fixture(scope="module")
def report(tiny_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "study_report.html"
    path = build_report(tiny_study, out=out, progress=False)
    assert path == out
    return path


@pytest.fixture(scope="module")
def page(report):
    return parse_page(report)


def test_page_is_well_formed_and_offline(report, page):
    html_text = report.read_text(encoding="utf-8")
    assert "http://" not in html_text and "https://" not in html_text
    assert "<script" not in html_text
    assert all(link.startswith("#") for link in page.links), page.links  # only in-page anchors


def test_every_image_is_a_local_png_beside_the_page(report, page):
    files = check_local_images(report, page)
    names = {file.name for file in files}
    expected = {
        "alignment_vs_steps.png",
        "alignment_vs_flops.png",
        "compute_frontier.png",
        "size_correlation.png",
        "categories.png",
        "samples.png",
    }
    assert expected <= names, names


INTERVAL = re.compile(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")


def test_runs_table_lists_every_run_with_status_and_final_value(tiny_study, page):
    text = page_text(page)
    data = collect_study(tiny_study)
    header = page.rows[0]
    ids = run_ids(tiny_study)
    for role, backbone in BACKBONES.items():
        row = page.row(ids[role])
        assert row[header.index("backbone")] == backbone
        assert row[header.index("status")] == "finished"
        assert row[header.index("final tifa")].startswith(f"{data.final_value(ids[role], 'tifa'):.3f} [")
        assert row[header.index("last eval step")] == "6"
        assert row[header.index("params")] == fmt.count(data.run(ids[role]).params)
    assert "2 runs (2 finished); 2 evaluated on tifa" in text


def test_runs_table_shows_each_final_tifa_with_its_interval(tiny_study, page):
    data = collect_study(tiny_study)
    column = page.rows[0].index("final tifa")
    for run_id in run_ids(tiny_study).values():
        cell = page.row(run_id)[column]
        match = INTERVAL.fullmatch(cell)
        assert match, cell
        value, lo, hi = map(float, match.groups())
        assert lo <= value <= hi and lo < hi  # a real interval, not a point
        assert lo >= 0.0 and hi <= 1.0  # inside TIFA's range
        curve = next(c for c in data.curves if c.run_id == run_id)
        expected = replicate_estimate([curve.samples[-1]], value_range=(0.0, 1.0))
        assert cell == expected.text()
        assert value == pytest.approx(curve.final_value, abs=5e-4)
    text = page_text(page)
    assert (
        "Final values of TIFA are shown as value [lo, hi], the 95% t interval over the evaluation prompts and "
        "eval seeds of that evaluation, within the run's one training seed" in text
    )
    n = len(data.curves[0].samples[-1])
    assert f"n = {n} prompts, {n} images per evaluation." in text  # one eval seed per prompt here


def test_nothing_on_the_page_says_bootstrap(report):
    assert "bootstrap" not in report.read_text(encoding="utf-8").lower()


def test_intro_counts_configurations_and_their_seeds(page):
    assert "use 2 configurations evaluated on tifa, seeds per configuration: 1" in page_text(page)


def test_compute_law_or_the_reason_it_cannot_be_fitted(page):
    text = page_text(page)
    fitted = "S = " in text and "·C^" in text and "95% CI" in text and "Intervals: t interval" in text
    # two configurations: too few for a law's interval, and the page says so
    # (which evaluations of two 6-step models lie on the frontier, 2 or 3 of 6, is chance)
    assert fitted or re.search(r"Cannot fit the power law on [23] Pareto-frontier points \(of 6\) on C", text)
    # the frontier points are listed with their intervals either way
    frontier = [row for row in page.rows if len(row) == 5 and row[3] == "1" and INTERVAL.fullmatch(row[4])]
    assert frontier, page.rows


def test_sections_for_what_two_runs_cannot_support_say_why(page):
    text = page_text(page)
    assert "No correlations: correlations need at least 3 runs, got 2." in text
    assert "No data scaling: the evaluated runs have one dataset size" in text


def test_chance_level_is_stated(tiny_study, page):
    chance = collect_study(tiny_study).chance_level
    assert chance is not None and 0 < chance < 1
    assert f"chance level ({chance:.3f})" in page_text(page)


def test_sample_grid_rows_are_runs_by_size_at_their_last_step(tiny_study, page):
    data = collect_study(tiny_study)
    grid = collect_samples(data, max_columns=4)
    ids = run_ids(tiny_study)
    assert [row.run_id for row in grid.rows] == [ids["small"], ids["large"]]  # ordered by parameters
    assert [row.step for row in grid.rows] == [6, 6]
    assert len(grid.columns) == 4 and grid.notes == []
    cell_h, cell_w = grid.cell_px
    assert (cell_h, cell_w) == (64, 64)  # 16 px samples enlarged 4x
    assert grid.image.shape == (2 * (64 + GRID_PAD_PX) + GRID_PAD_PX, 4 * (64 + GRID_PAD_PX) + GRID_PAD_PX, 3)
    # Each cell is that run's image for that column's prompt and seed, enlarged by pixel repetition.
    for r, row in enumerate(grid.rows):
        manifest = tiny_study / "runs" / row.run_id / "eval" / "step_000006" / "manifest.jsonl"
        entries = {(e.prompt_id, e.seed): e for e in read_manifest(manifest)}
        for c, column in enumerate(grid.columns):
            image = load_image(manifest.parent / entries[(column.prompt_id, column.seed)].path)
            top, left = GRID_PAD_PX + r * (cell_h + GRID_PAD_PX), GRID_PAD_PX + c * (cell_w + GRID_PAD_PX)
            cell = grid.image[top : top + cell_h, left : left + cell_w]
            np.testing.assert_array_equal(cell, image.repeat(4, axis=0).repeat(4, axis=1))
    # The page lists every column's caption.
    text = page_text(page)
    full = collect_samples(data)
    assert len(full.columns) == 6  # every prompt of the tiny prompt set (one per category)
    for column in full.columns:
        assert column.caption in text


def test_category_table_has_every_category(tiny_study, page):
    data = collect_study(tiny_study)
    header = next(row for row in page.rows if row[:2] == ["run", "overall"])
    categories = sorted(data.curves[0].category)
    assert header[2:] == categories
    rows = [
        row for row in page.rows if row and row[0] in run_ids(tiny_study).values() and len(row) == len(header)
    ]
    assert len(rows) == 2
    for row, curve in zip(rows, data.curves):
        assert INTERVAL.fullmatch(row[1]), row  # the overall value carries its interval
        # one prompt per category in the tiny study: the value, and the reason there is no interval
        assert row[2:] == [f"{curve.category[name][-1]:.3f}" for name in categories]
    assert (
        "Per-category final values of TIFA without an interval: an interval over prompts needs at least 2 "
        "prompts, got 1." in page_text(page)
    )


def test_default_output_is_inside_the_study(tiny_study):
    path = build_report(tiny_study, progress=False)
    assert path == default_out(tiny_study) == tiny_study / "report" / "report.html"
    page = parse_page(path)
    check_local_images(path, page)
    assert "Runs" in page_text(page)

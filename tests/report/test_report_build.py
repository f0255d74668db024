"""The report of a real tiny study (two runs trained and evaluated by the real loop)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from report_html_check import check_links, check_local_images, page_text, parse_page
from report_study import BACKBONES, copy_study, run_ids, write_summary

from t2iscale import __version__
from t2iscale.data.shapes.prompts import chance_level, eval_prompt_set, ground_truth_scene
from t2iscale.data.shapes.render import render_scene
from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.manifest import load_image, read_manifest
from t2iscale.eval.oracle_check import run_oracle_check
from t2iscale.findings.arms import study_configurations
from t2iscale.findings.compare import compare_factor
from t2iscale.report import fmt, plots
from t2iscale.report.build import build_report, default_out
from t2iscale.report.collect import collect_study, read_run_log
from t2iscale.report.samples import GRID_PAD_PX, collect_samples
from t2iscale.train.jsonl import read_jsonl


@pytest.fixture(scope="module")
def report(tiny_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "study_report.html"
    path = build_report(tiny_study, out=out, progress=False)
    assert path == out
    return path


@pytest.fixture(scope="module")
def page(report):
    return parse_page(report)


@pytest.fixture(scope="module")
def headline(page):
    return page.text_of("headline")


def test_page_is_well_formed_and_offline(report, page):
    html_text = report.read_text(encoding="utf-8")
    assert "http://" not in html_text and "https://" not in html_text
    assert "<script" not in html_text
    check_links(report, page)  # in-page anchors, and relative links to the runs' folders
    assert any(link.startswith("#") for link in page.links)
    assert any(link.startswith("../") for link in page.links)


def test_every_image_is_a_local_file_beside_the_page(report, page):
    files = check_local_images(report, page)
    names = {file.name for file in files}
    expected = {
        "compute_frontier.svg",
        "size_correlation.svg",
        "alignment_vs_steps.svg",
        "training_logs.svg",
        "throughput.svg",
        "categories.svg",
        "finding_0_0.svg",
        "finding_0_0_differences.svg",
    }
    assert expected <= names, names
    assert any(file.parent.name == "samples" and file.suffix == ".png" for file in files)


def test_figures_are_deterministic_svg(tiny_study, report, tmp_path):
    again = build_report(tiny_study, out=tmp_path / "again.html", progress=False)
    for name in ("compute_frontier.svg", "categories.svg", "training_logs.svg"):
        first = (report.parent / name).read_text()
        assert "<dc:date>" not in first
        assert first == (again.parent / name).read_text(), name


def test_headline_comes_first(page):
    assert page.sections[0] == "headline"
    assert page.sections[1:4] == ["findings", "compute", "size"]
    assert page.sections[-3:] == ["runs", "samples", "provenance"]


def test_headline_states_the_question(headline):
    assert (
        "Question: How does TIFA grow with training compute C and parameters N, and which backbone aligns best?"
        in headline
    )
    assert "Study report-tiny: 2 runs (2 finished); 2 evaluated on tifa." in headline
    assert "use 2 configurations evaluated on tifa, seeds per configuration: 1" in headline
    assert "varies several grid axes" not in headline  # backbones alone: no law is fitted on part of them


def test_headline_gives_the_laws_or_why_not(headline):
    # two configurations: too few points for a law with an interval, and the headline says so
    assert re.search(
        r"Compute law: Cannot fit the power law on [23] Pareto-frontier points \(of 6\) on C", headline
    )
    assert "Parameter law: Cannot fit the power law on 2 points (of 2) on N" in headline
    assert ".." not in headline


def test_headline_gives_each_pair_with_its_verdict(tiny_study, headline):
    study = study_configurations(tiny_study, "tifa")
    (pair,) = compare_factor(study, "backbone")
    step = pair.comparison("step")
    effect = step.effect
    expected = (
        f"{pair.arm_a.name} − {pair.arm_b.name} at step 6: {effect.value:+.3f} [{effect.lo:+.3f}, {effect.hi:+.3f}]"
        f" → {step.verdict}"
    )
    assert expected in headline
    assert "backbone: paired by prompt and eval seed, 95% intervals" in headline


def test_headline_names_the_best_model_with_its_interval(tiny_study, headline):
    data = collect_study(tiny_study)
    best = max(data.configurations, key=lambda c: c.estimate(c.final_step, value_range=(0.0, 1.0)).value)
    estimate = best.estimate(best.final_step, value_range=(0.0, 1.0))
    assert (
        f"Best model: {best.label} ({fmt.count(best.params)} params): TIFA {estimate.text()} at step 6"
        in headline
    )


def test_headline_gives_floor_and_ceiling(tiny_study, headline):
    chance = collect_study(tiny_study).chance_level
    truth = run_oracle_check("tiny", n=1, resolutions=(16,), progress=False)["resolutions"]["16"][
        "ground_truth"
    ]
    assert f"floor {chance:.3f}, the chance level" in headline
    assert f"ceiling {truth['accuracy']:.3f}, the oracle's accuracy on ground-truth renders" in headline
    assert "t2iscale eval oracle-check --world tiny --n 1 --resolutions 16" in headline


def test_headline_without_summary_has_no_bars(headline):
    assert "Bars: none set for this study (no summary.json" in headline


def test_headline_shows_the_bars_of_summary_json(tiny_study, tmp_path):
    study = copy_study(tiny_study, tmp_path / "study")
    bars = {
        "largest_margin_over_chance": {
            "label": "largest model's TIFA over chance, at least",
            "value": 0.23,
            "bar": 0.25,
            "ok": False,
        },
        "spearman_p": {
            "label": "exact p of Spearman(params, TIFA), below",
            "value": 0.0014,
            "bar": 0.05,
            "ok": True,
        },
    }
    write_summary(study, bars, spearman_params_tifa=1.0, command="t2iscale demo --out demo-study")
    path = build_report(study, progress=False)
    page = parse_page(path)
    headline = page.text_of("headline")
    assert "Bars (from the study's summary.json):" in headline
    assert "largest model's TIFA over chance, at least 0.25: 0.23: FAIL" in headline
    assert "exact p of Spearman(params, TIFA), below 0.05: 0.0014: pass" in headline
    assert '<span class="fail">FAIL</span>' in path.read_text()
    provenance = page.text_of("provenance")
    assert "the study: t2iscale demo --out demo-study" in provenance


def test_bars_of_summary_json_describe_themselves():
    from t2iscale.report.headline import Bar, bar_rows

    described = {"bars": {"margin": {"label": "margin over chance", "value": 0.3, "bar": 0.25, "ok": True}}}
    assert bar_rows(described) == [Bar("margin over chance", 0.3, 0.25, True)]
    unlabelled = {"bars": {"spearman_p": {"value": 0.08, "bar": 0.05, "ok": False}}}
    assert bar_rows(unlabelled) == [Bar("Spearman(params, TIFA), exact p", 0.08, 0.05, False)]
    assert bar_rows({"bars": "none"}) == [] and bar_rows(None) == []
    assert bar_rows({"bars": {"old_form_ok": True, "old_form": 1.0}}) == []  # only self-describing bars


def test_findings_panel_gives_every_matched_axis_and_the_verdict(tiny_study, page):
    study = study_configurations(tiny_study, "tifa")
    (pair,) = compare_factor(study, "backbone")
    text = page.text_of("findings")
    rows = page.table("A")
    by_axis = {row[2]: row for row in rows[1:]}
    assert set(by_axis) == {"step", "compute C", "parameters N"}
    step = pair.comparison("step")
    assert (
        by_axis["step"][3] == "6"
        and by_axis["step"][4] == step.a.text()
        and by_axis["step"][-1] == step.verdict
    )
    assert by_axis["parameters N"][6] == "not comparable"  # two sizes: no common N, and the page says why
    assert "Comparisons that cannot be made, and why (1)" in text and "no common params" in text
    effect = step.effect
    assert f"At step 6, {pair.arm_a.name} − {pair.arm_b.name} = {effect.value:+.3f}" in text
    assert "nothing is adjusted for multiple comparisons" in text


INTERVAL = re.compile(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")


def test_runs_table_lists_every_run_with_status_and_final_value(tiny_study, page):
    data = collect_study(tiny_study)
    header = page.table("run")[0]
    ids = run_ids(tiny_study)
    for role, backbone in BACKBONES.items():
        row = page.row(ids[role])
        assert row[header.index("backbone")] == backbone
        assert row[header.index("status")] == "finished"
        assert row[header.index("final tifa")].startswith(f"{data.final_value(ids[role], 'tifa'):.3f} [")
        assert row[header.index("last eval step")] == "6"
        assert row[header.index("params")] == fmt.count(data.run(ids[role]).params)
        assert row[header.index("GMACs (16 px)")] == fmt.number(data.run(ids[role]).gmacs)
        assert row[0] == f"{ids[role]} config · metrics · eval"  # the run's folder and its files
        log = read_jsonl(tiny_study / "runs" / ids[role] / "metrics.jsonl")
        assert row[header.index("final loss")] == fmt.number(log[-1]["loss"])
        assert row[header.index("training FLOPs")] == plots.short_number(log[-1]["train_flops"])
    # the grid axes every run shares are a sentence, not columns
    assert "captions" not in header and "data size" not in header
    assert "Every run has the same data size 64; noun pairs" in page.text_of("runs")


def test_runs_table_links_each_run_folder(tiny_study, report):
    html_text = report.read_text()
    page = parse_page(report)
    for run_id in run_ids(tiny_study).values():
        assert f'/">{run_id}</a>' in html_text
        (folder,) = [link for link in page.links if link.endswith(f"/runs/{run_id}/")]
        assert (report.parent / folder).resolve() == (tiny_study / "runs" / run_id).resolve()
        assert (report.parent / folder / "config.json").is_file()


def test_runs_table_shows_each_final_tifa_with_its_interval(tiny_study, page):
    data = collect_study(tiny_study)
    column = page.table("run")[0].index("final tifa")
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


def test_compute_law_or_the_reason_it_cannot_be_fitted(page):
    text = page.text_of("compute")
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
    assert "No data scaling: the evaluated runs all have D = " in text


def test_chance_level_is_stated(tiny_study, page):
    chance = collect_study(tiny_study).chance_level
    assert chance is not None and 0 < chance < 1
    assert f"chance, the floor ({chance:.3f})" in page.text_of("compute")


def test_sparse_evaluations_are_said(page):
    assert "Evaluations are sparse: each run was evaluated 3 time(s) (steps 2, 4, 6)" in page.text_of(
        "training"
    )


def test_training_logs_come_from_metrics_jsonl(tiny_study):
    run_id = run_ids(tiny_study)["small"]
    log = read_run_log(tiny_study / "runs" / run_id)
    records = read_jsonl(tiny_study / "runs" / run_id / "metrics.jsonl")
    assert log.steps == tuple(r["step"] for r in records) == (1, 2, 3, 4, 5, 6)
    assert log.loss == tuple(r["loss"] for r in records)
    assert log.lr == tuple(r["lr"] for r in records)
    assert log.mfu == tuple(r["mfu"] for r in records)
    assert log.status_message.startswith("peak TFLOP/s for MFU")


def test_sample_grid_rows_are_runs_by_size_at_their_last_step(tiny_study):
    data = collect_study(tiny_study)
    grid = collect_samples(data, max_columns=4)
    ids = run_ids(tiny_study)
    assert [row.run_id for row in grid.rows] == [ids["small"], ids["large"]]  # ordered by parameters
    assert [row.step for row in grid.rows] == [6, 6]
    assert [row.seed for row in grid.rows] == [0, 0]
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
            enlarged = image.repeat(4, axis=0).repeat(4, axis=1)
            np.testing.assert_array_equal(cell, enlarged)
            np.testing.assert_array_equal(grid.cells[r][c], enlarged)


def test_sample_grid_on_the_page_has_prompts_seeds_and_ground_truth(tiny_study, report, page):
    data = collect_study(tiny_study)
    grid = collect_samples(data)
    assert len(grid.columns) == 6  # every prompt of the tiny prompt set (one per category)
    header = page.table("")[0]
    assert header[1:] == [
        f"{c.caption} eval seed {c.seed}" for c in grid.columns
    ]  # the prompt text on the grid
    truth = page.row("ground truth a render of the prompt (16 px)")
    assert len(truth) == 7
    ids = run_ids(tiny_study)
    small = next(row for row in page.rows if row[0].startswith(f"{BACKBONES['small']} "))
    assert small[0].endswith(
        "training seed 0 · " + fmt.count(data.run(ids["small"]).params) + " params · step 6"
    )
    # the ground-truth cell is the prompt's render at the study's resolution, enlarged like the samples
    prompts = {p.id: p for p in eval_prompt_set("tiny", per_category=1).prompts}
    first = grid.columns[0]
    expected = render_scene(
        ground_truth_scene(prompts[first.prompt_id], first.seed), prompts[first.prompt_id].world, 16
    )
    with Image.open(report.parent / "samples" / "truth_00.png") as image:
        np.testing.assert_array_equal(
            np.asarray(image.convert("RGB")), expected.repeat(4, axis=0).repeat(4, axis=1)
        )


def test_category_table_has_every_category_with_its_chance_line(tiny_study, page):
    data = collect_study(tiny_study)
    rows = page.table("configuration", "overall")
    header = rows[0]
    categories = sorted(data.curves[0].category)
    assert header[:2] == ["configuration", "overall"] and header[2:] == categories
    for configuration in data.configurations:
        row = next(row for row in rows if row[0] == configuration.label)
        assert INTERVAL.fullmatch(row[1]), row  # the overall value carries its interval
        # one prompt per category in the tiny study: the value, and the reason there is no interval
        curve = configuration.as_curve()
        assert row[2:] == [f"{curve.category[name][-1]:.3f}" for name in categories]
    by_category = eval_prompt_set("tiny", per_category=1).by_category()
    chance = next(row for row in rows if row[0] == "chance")
    assert chance[2:] == [
        f"{chance_level([q for p in by_category[n] for q in p.questions]):.3f}" for n in categories
    ]
    truth = run_oracle_check("tiny", n=1, resolutions=(16,), progress=False)["resolutions"]["16"][
        "ground_truth"
    ]
    oracle = next(row for row in rows if row[0] == "oracle on ground truth")
    assert oracle[2:] == [f"{truth['per_category'][n]:.3f}" for n in categories]
    text = page.text_of("categories")
    assert "Dashed: each category's chance level" in text
    assert (
        "Per-category final values of TIFA without an interval: an interval over prompts needs at least 2 "
        "prompts, got 1." in text
    )


def test_provenance_names_spec_versions_machine_and_times(tiny_study, page, report):
    text = page.text_of("provenance")
    assert f"version {__version__}, commit " in text
    assert "numpy " in text and "matplotlib " in text and "python " in text
    assert "Machine that built this report: " in text and "logical cores" in text
    assert "peak TFLOP/s for MFU" in text  # the training device, from each run's status
    assert "study registered 20" in text and "training time summed over runs" in text
    assert "the study: not recorded" in text
    spec = json.loads(page.text_of("provenance").split("stores it ")[1].split(" summary.json")[0])
    assert spec["name"] == "report-tiny" and spec["factors"] == ["backbone"]


def test_the_oracle_ceiling_is_measured_once(report):
    cached = json.loads((report.parent / "oracle_check.json").read_text())
    assert cached["key"] == {"world": "tiny", "n": 1, "resolution": 16}


def test_default_output_is_inside_the_study(tiny_study):
    path = build_report(tiny_study, progress=False)
    assert path == default_out(tiny_study) == tiny_study / "report" / "report.html"
    page = parse_page(path)
    check_local_images(path, page)
    check_links(path, page)
    assert "Runs" in page_text(page)


def test_tifa_by_element_type_with_intervals_and_chance(tiny_study, page):
    """Each configuration's final TIFA per element type, from its runs' tifa.json, with the interval over the
    prompts that ask that type where more than one does, and a uniform guesser's row."""
    import json

    from t2iscale.study.results import load_runs

    text = page.text_of("element-types")
    assert "element type" in text
    run = load_runs(tiny_study)[0]
    step_dirs = sorted((run.run_dir / "eval").glob("step_*"))
    result = json.loads((step_dirs[-1] / "eval" / "tifa.json").read_text())
    kinds = result["by_element_type"]
    assert kinds and all(kind in text for kind in kinds)
    assert "chance" in text
    with_interval = [k for k, e in kinds.items() if e.get("interval")]
    assert with_interval
    for kind in with_interval:  # one training seed per configuration: the run's own interval over prompts
        interval = kinds[kind]["interval"]
        assert f"{interval['value']:.3f} [{interval['lo']:.3f}, {interval['hi']:.3f}]" in text, kind

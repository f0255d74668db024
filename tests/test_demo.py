"""`t2iscale demo` end to end with a few-step budget: parallel workers, evaluation, fits, report, summary.json.

The real demo's bars (exact Spearman p < 0.05 over its six models, the largest above the smallest with a paired CI
excluding 0, the largest >= chance + 0.25, at most 10 minutes) need its full budget; they are measured by running
`make demo` (README), not here. This test checks the whole path and the summary's contents.
"""

import json

from t2iscale.cli import main
from t2iscale.train.jsonl import read_jsonl

FEW_STEPS = [
    "--set=base.budget.total_steps=4",
    "--set=base.budget.checkpoint_every_steps=2",
    "--set=base.budget.log_every_steps=2",
    "--set=base.eval.every_steps=2",
    "--set=base.eval.sampler_steps=2",
    "--set=base.eval.per_category=1",
    "--set=base.data.resolution=16",
    "--set=base.recipe.global_batch=4",
]


def test_demo_trains_the_ladder_fits_reports_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet", "--workers", "2", *FEW_STEPS]) == 0
    printed = capsys.readouterr().out
    assert "Spearman(params, TIFA)" in printed and "report.html" in printed
    assert "TIFA [95% CI]" in printed and "exact permutation test over" in printed
    assert "largest - smallest at step 4:" in printed and "one training seed" in printed
    bar_lines = [line for line in printed.splitlines() if line.startswith(("  pass  ", "  FAIL  "))]
    assert len(bar_lines) == 4  # each bar with its figure and pass/fail, the elapsed time last
    assert all("(bar: " in line for line in bar_lines)
    assert bar_lines[-1].startswith("  pass  elapsed ")  # four steps finish far inside ten minutes

    summary = json.loads((out / "summary.json").read_text())
    models = summary["models"]
    assert len(models) == 6  # with five, only a perfect ordering reaches an exact Spearman p < 0.05
    assert [model["params"] for model in models] == sorted(model["params"] for model in models)
    assert all(0.0 <= model["final_tifa"] <= 1.0 for model in models)
    for model in models:  # every model's value with its interval over the prompts and n
        interval = model["final_tifa_interval"]
        assert 0.0 <= interval["lo"] <= model["final_tifa"] <= interval["hi"] <= 1.0
        assert (
            interval["value"] == model["final_tifa"] and model["n_seeds"] == 1 and interval["n_prompts"] == 6
        )
        # one prompt per category here (per_category 1): values without an interval over prompts
        assert {name: set(entry) for name, entry in model["final_categories"].items()} == {
            name: {"value"} for name in model["final_categories"]
        }
    pairs = summary["comparisons"]["backbone"]["pairs"]  # the demo declares the backbone factor
    assert len(pairs) == len(models) * (len(models) - 1) // 2
    assert summary["largest_vs_smallest"]["matched"] == "step" and summary["largest_vs_smallest"]["verdict"]
    assert summary["correlations"]["spearman_params"]["p_method"].startswith("exact permutation test")
    assert 0.3 < summary["chance_level"] < 0.6
    assert -1.0 <= summary["spearman_params_tifa"] <= 1.0
    assert set(summary["fits"]) == {"compute", "params"}
    bars = summary["bars"]
    assert set(bars) == {"spearman_p", "largest_above_smallest", "largest_margin_over_chance", "elapsed"}
    assert all(set(bar) == {"label", "value", "bar", "ok"} for bar in bars.values())
    assert bars["spearman_p"]["ok"] == (bars["spearman_p"]["value"] < 0.05)
    effect = summary["largest_vs_smallest"]["effect"]
    assert bars["largest_above_smallest"]["value"] == effect["lo"]
    assert bars["largest_above_smallest"]["ok"] == (effect["lo"] > 0)
    assert summary["command"].startswith("t2iscale demo")
    assert 0 < summary["elapsed_s"] <= summary["elapsed_with_report_s"]  # to the summary; with the report
    assert bars["elapsed"]["value"] == summary["elapsed_with_report_s"] and bars["elapsed"]["bar"] == 600
    assert bars["elapsed"]["ok"] == (summary["elapsed_with_report_s"] <= 600)
    assert (out / "report" / "report.html").is_file()

    # Every run was trained by exactly one worker, once: each step logged once.
    for model in models:
        (run_id,) = model["run_ids"]
        steps = [record["step"] for record in read_jsonl(out / "runs" / run_id / "metrics.jsonl")]
        assert steps == [2, 4]

    # Running it again trains nothing and gives the same models and scores.
    assert main(["demo", "--out", str(out), "--quiet", *FEW_STEPS]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert [(m["run_ids"], m["final_tifa"]) for m in again["models"]] == [
        (m["run_ids"], m["final_tifa"]) for m in models
    ]


def test_demo_seed_is_its_own_study(tmp_path, capsys, monkeypatch):
    from t2iscale import demo

    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda out, **options: calls.append((out, options)))
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--seed", "7", "--quiet"]) == 0
    assert main(["demo", "--quiet"]) == 0
    assert [out for out, _ in calls] == ["demo-study-seed7", "demo-study"]
    assert calls[0][1]["overrides"] == ["base.seed=7"] and calls[1][1]["overrides"] == []

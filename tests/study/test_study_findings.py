"""Findings on a real tiny study, end to end through the CLI: two SDXL widths and one SD2 UNet, two training seeds
each; `compare`, `fit`, `correlate` and `study status` read it and every value carries its interval and n."""

import json

import numpy as np
import pytest
from study_fixtures import run_t2iscale, tiny_spec

from t2iscale.cli import main
from t2iscale.eval.intervals import per_prompt_scores
from t2iscale.findings.curves import load_curves
from t2iscale.study.results import load_runs
from t2iscale.study.runner import run_study

BACKBONES = ["sdxl-c8-td1_1", "sdxl-c16-td1_1", "sd2-c8"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    spec = tiny_spec(backbones=BACKBONES, eval={"seeds": [0, 1]})
    spec["grid"]["seeds"] = SEEDS
    spec["factors"] = ["backbone", "layout"]
    path = tmp_path_factory.mktemp("findings") / "study"
    report = run_study(spec, path, progress=False)
    assert [o.outcome for o in report.outcomes] == ["finished"] * 6
    return path


def test_compare_by_backbone_pairs_runs_by_prompt_and_seed(study):
    code, out, err = run_t2iscale("compare", "--study", str(study), "--by", "backbone", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["factor"] == "backbone" and result["metric"] == "tifa" and len(result["pairs"]) == 3
    pair = next(p for p in result["pairs"] if {p["arm_a"]["name"], p["arm_b"]["name"]} == set(BACKBONES[:2]))
    assert pair["arm_a"]["name"] == "sdxl-c16-td1_1"  # the larger model is A
    assert [c["n_seeds"] for c in pair["arm_a"]["configurations"]] == [2]
    by_axis = {c["matched"]: c for c in pair["comparisons"]}
    assert set(by_axis) == {"step", "compute", "params"}
    step = by_axis["step"]
    assert step["comparable"] and step["at"] == 4 and step["effect"]["n_seeds"] == [2, 2]
    assert step["effect"]["n_prompts"] == 6 and step["effect"]["n_samples"] == 12
    assert step["effect"]["lo"] <= step["effect"]["value"] <= step["effect"]["hi"]
    assert step["verdict"] in (
        "sdxl-c16-td1_1 > sdxl-c8-td1_1",
        "sdxl-c8-td1_1 > sdxl-c16-td1_1",
        "not separable at this budget",
    )
    assert step["permutation_method"].startswith("exact, over the 6 assignments of 4 runs")

    # the effect is the mean over runs of A minus that of B, per prompt, from the stored per-image scores
    curves = {c.run_id: c for c in load_curves(study, "tifa")}
    runs = load_runs(study)
    samples = [
        curves[r.run_id].samples[-1]
        for name in ("sdxl-c16-td1_1", "sdxl-c8-td1_1")
        for r in runs
        if r.backbone == name
    ]
    _, _, table = per_prompt_scores(samples)
    assert step["effect"]["value"] == pytest.approx(table[:2].mean() - table[2:].mean())
    # equal N is no comparison: two single backbones of different size do not meet on the params axis
    assert not by_axis["params"]["comparable"] and "no common params" in by_axis["params"]["reason"]
    # the smaller model's final compute lies inside the larger one's curve only if it trained past step 2's FLOPs
    assert by_axis["compute"]["comparable"] or "no common compute" in by_axis["compute"]["reason"]


def test_compare_by_layout_reads_the_sdxl_ladder_and_states_the_papers_direction(study, capsys):
    assert main(["compare", "--study", str(study), "--by", "layout"]) == 0
    out = capsys.readouterr().out
    assert "A = sdxl (2 backbones" in out and "B = sd2" in out
    assert "not comparable: arm 'sdxl' spans 2 backbones" in out
    assert "paper F1 (Sec. 4.1): SDXL's UNet layout beats SD2's at equal training compute" in out
    assert "95% intervals" in out and "n = 6 prompts, 12 images per evaluation, 2 training seeds" in out


def test_compare_errors_are_one_line(study, capsys):
    for arguments, message in (
        (
            ["--by", "caption_policy"],
            "factor 'caption_policy' has one level in this study (mix): nothing to compare; "
            "factors with 2+ levels here: backbone, layout",
        ),
        (
            ["--by", "seed"],
            "unknown factor 'seed'; valid factors: backbone, dataset_size, caption_policy, layout",
        ),
        (["--by", "scaling"], "factor 'scaling' needs two SDXL ladders through one reference backbone"),
        (["--by", "backbone", "--metric", "oracle_fid"], "a set statistic has no per-image scores to pair"),
    ):
        assert main(["compare", "--study", str(study), *arguments]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_fit_and_correlate_use_configurations_with_their_seeds(study, capsys):
    # every point, not the frontier: which of 4-step models lie on it is chance
    assert main(["fit", "--study", str(study), "--x", "params", "--no-frontier", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["n_points"] == fit["n_runs"] == fit["n_candidate_points"] == 3
    assert all(p["n_seeds"] == 2 and p["interval"]["n_seeds"] == [2] for p in fit["points"])
    assert main(["correlate", "--study", str(study)]) == 0
    out = capsys.readouterr().out
    assert "final TIFA of 3 configurations (mean over training seeds, 95% interval)" in out
    assert "exact permutation test over 6 orderings" in out
    values = [line for line in out.splitlines() if line.strip().startswith(("sdxl", "sd2"))]
    assert len(values) == 3 and all("[" in line for line in values)


def test_status_shows_each_runs_interval_and_n(study):
    code, out, err = run_t2iscale("study", "status", str(study))
    assert code == 0, err
    run_lines = [line for line in out.splitlines()[1:] if " finished " in line]
    assert len(run_lines) == 6 and all(line.count("[") == 1 for line in run_lines)
    assert "95% interval over prompts within the run's training seed (6 prompts, 12 images)" in out
    code, out, _ = run_t2iscale("study", "status", str(study), "--json")
    entries = [row["metrics"]["tifa"] for row in json.loads(out)]
    assert all(
        e["lo"] <= e["value"] <= e["hi"] and e["n_prompts"] == 6 and e["n_images"] == 12 for e in entries
    )
    assert np.isfinite([e["hi"] - e["lo"] for e in entries]).all()


def test_predict_flags_extrapolation_both_ways_and_shows_chance_as_a_reference(study, capsys):
    assert main(["predict", "--study", str(study), "--x", "params", "--at", "1000"]) == 0
    out = capsys.readouterr().out
    assert "(of the law's value there, not of one new run)" in out
    assert "x below the smallest fitted N (3.869e+05)" in out
    assert "reference: chance level 0." in out and "a reference line, not a bound" in out
    assert main(["predict", "--study", str(study), "--x", "params", "--at", "1e30"]) == 1
    err = capsys.readouterr().err
    assert "outside the metric's range [0, 1]" in err and "fitted on X from 3.869e+05 to 1.512e+06" in err


def test_runs_without_evaluations_are_left_out_and_listed(study, tmp_path, capsys):
    import shutil

    from t2iscale.study.plan import load_spec
    from t2iscale.study.runner import register_study

    extended = tmp_path / "extended"
    shutil.copytree(study, extended)
    spec = tiny_spec(backbones=BACKBONES + ["sdxl-c8-td1_2"], eval={"seeds": [0, 1]})
    spec["grid"]["seeds"] = SEEDS + [2]
    register_study(load_spec(spec), extended, "extended")  # new grid points, never trained
    assert main(["compare", "--study", str(extended), "--by", "layout", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "sdxl-c8-td1_1, seed 2 (pending)" in result["left_out"]
    assert "sdxl-c8-td1_2, seed 0 (pending)" in result["left_out"]
    sdxl = next(p["arm_a"] for p in result["pairs"] if p["arm_a"]["name"] == "sdxl")
    assert [c["n_seeds"] for c in sdxl["configurations"]] == [
        2,
        2,
    ]  # the untrained backbone is not in the arm
    # an arm with no evaluated run at all is an error that names it
    assert main(["compare", "--study", str(extended), "--by", "backbone"]) == 1
    assert (
        "arm 'sdxl-c8-td1_2' of factor 'backbone' has no run with an evaluation of 'tifa'"
        in capsys.readouterr().err
    )
    assert main(["correlate", "--study", str(extended)]) == 0
    assert "left out (no evaluation of this metric): " in capsys.readouterr().out


def test_an_unknown_metric_names_the_studys_metrics(study, capsys):
    assert main(["compare", "--study", str(study), "--by", "backbone", "--metric", "clip"]) == 1
    assert "no evaluation of metric 'clip' (its metrics: tifa)" in capsys.readouterr().err

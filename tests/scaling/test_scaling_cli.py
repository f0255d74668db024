import json
import subprocess
import sys
import types

import numpy as np
import pytest

from t2iscale.cli import main
from t2iscale.scaling.fits import fit_law, predict
from t2iscale.scaling.frontier import pareto_frontier
from t2iscale.scaling.points import save_points, scaling_points


@pytest.fixture
def points_file(tmp_path, study_curves):
    return save_points(tmp_path / "points.json", study_curves)


def _run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_json_matches_the_library(capsys, points_file, study_curves):
    out = _run_json(
        capsys, ["fit", "--points", str(points_file), "--x", "compute", "--bootstrap", "300", "--json"]
    )
    frontier = pareto_frontier(scaling_points(study_curves, "compute"))
    fit = fit_law([p.x for p in frontier], [p.value for p in frontier], bootstrap=300, seed=0)
    assert out["axis"] == "compute" and out["symbol"] == "C" and out["form"] == "power"
    assert out["frontier"] is True and out["metric"] == "tifa"
    assert out["n_points"] == len(frontier) == len(out["points"])
    assert out["n_candidate_points"] == sum(len(c.steps) - 1 for c in study_curves)
    assert [(p["run_id"], p["step"]) for p in out["points"]] == [(p.run_id, p.step) for p in frontier]
    for name in ("a", "b"):
        entry = out["params"][name]
        assert entry["estimate"] == pytest.approx(fit.params[name])
        assert [entry["lo"], entry["hi"]] == pytest.approx(list(fit.interval(name)))
        assert entry["lo"] <= entry["estimate"] <= entry["hi"]
    assert out["r2"] == pytest.approx(fit.r2) and out["bootstrap"] == {"n": 300, "failed": 0, "seed": 0}
    assert out["law"].startswith("S = ") and "·C^" in out["law"]


def test_no_frontier_uses_every_point_and_params_axis_uses_runs(capsys, points_file, study_curves):
    every = _run_json(
        capsys,
        [
            "fit",
            "--points",
            str(points_file),
            "--x",
            "compute",
            "--no-frontier",
            "--bootstrap",
            "50",
            "--json",
        ],
    )
    assert every["n_points"] == every["n_candidate_points"] == sum(len(c.steps) - 1 for c in study_curves)
    by_params = _run_json(
        capsys, ["fit", "--points", str(points_file), "--x", "params", "--bootstrap", "50", "--json"]
    )
    assert by_params["symbol"] == "N" and by_params["n_candidate_points"] == len(study_curves)
    assert by_params["params"]["b"]["estimate"] > 0  # bigger models end higher in the synthetic study


def test_fit_text_output(capsys, points_file):
    assert main(["fit", "--points", str(points_file), "--x", "data", "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("S = ") and "·D^" in out
    assert "95% CI [" in out and "R² " in out and "points used:" in out
    assert "n900m-d800m" in out  # the best run is on the data envelope


def test_saturating_fit_from_a_csv_file(capsys, tmp_path, study_curves):
    path = save_points(tmp_path / "points.csv", study_curves)
    out = _run_json(
        capsys,
        [
            "fit",
            "--points",
            str(path),
            "--x",
            "compute",
            "--form",
            "saturating",
            "--bootstrap",
            "100",
            "--json",
        ],
    )
    assert out["form"] == "saturating" and set(out["params"]) == {"s_inf", "a", "b"}
    best = max(c.final_value for c in study_curves)
    assert best - 0.02 < out["params"]["s_inf"]["estimate"] < 1.5


def test_predict_json(capsys, points_file, study_curves):
    at = 4e19  # 10x beyond the largest compute of the study
    out = _run_json(
        capsys,
        [
            "predict",
            "--points",
            str(points_file),
            "--x",
            "compute",
            "--at",
            str(at),
            "--bootstrap",
            "300",
            "--json",
        ],
    )
    frontier = pareto_frontier(scaling_points(study_curves, "compute"))
    fit = fit_law([p.x for p in frontier], [p.value for p in frontier], bootstrap=300, seed=0)
    value, lo, hi = predict(fit, at)
    prediction = out["prediction"]
    assert prediction["at"] == at
    assert [prediction["value"], prediction["lo"], prediction["hi"]] == pytest.approx([value, lo, hi])
    assert prediction["lo"] < prediction["value"] < prediction["hi"]
    assert prediction["extrapolation_factor"] == pytest.approx(at / max(p.x for p in frontier))
    assert out["fit"]["law"] == fit.render("C")


def test_predict_text_flags_extrapolation(capsys, points_file):
    assert (
        main(["predict", "--points", str(points_file), "--x", "params", "--at", "1e10", "--bootstrap", "50"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("S(N = 1e+10) = ") and "95% CI [" in out and "extrapolation" in out


def test_correlate_json(capsys, points_file):
    out = _run_json(capsys, ["correlate", "--points", str(points_file), "--json"])
    assert {(c["predictor"], c["method"]) for c in out["correlations"]} == {
        ("params", "spearman"),
        ("params", "pearson"),
        ("gmacs", "spearman"),
        ("gmacs", "pearson"),
    }
    assert all(c["coefficient"] > 0.5 for c in out["correlations"])


def test_errors_are_one_line(capsys, tmp_path, points_file):
    assert main(["fit", "--points", str(tmp_path / "missing.json"), "--x", "compute"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("t2iscale: error: ") and "missing.json: no such points file" in err
    assert err.count("\n") == 1
    assert main(["fit", "--points", str(points_file), "--x", "compute", "--metric", "fid"]) == 2
    assert "no curves for metric 'fid'" in capsys.readouterr().err
    assert main(["predict", "--points", str(points_file), "--x", "compute", "--at", "-1"]) == 2
    assert "--at must be a finite positive X" in capsys.readouterr().err
    # the params envelope of 3 model sizes has 3 points: too few for 3 parameters, and the error says where from
    assert main(["fit", "--points", str(points_file), "--x", "params", "--form", "saturating"]) == 2
    err = capsys.readouterr().err
    assert "fit on 3 Pareto-frontier points (of 9) on --x params: a saturating law" in err
    assert "needs at least 4 points, got 3" in err


def test_study_without_results_loader_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "t2iscale.study.results", None)  # makes the import fail
    assert main(["fit", "--study", str(tmp_path), "--x", "compute"]) == 2
    assert "study results are not available" in capsys.readouterr().err


def test_study_uses_the_study_results_loader(capsys, monkeypatch, tmp_path, study_curves):
    calls = []

    def load_curves(study_dir, metric):
        calls.append((study_dir, metric))
        return study_curves

    module = types.ModuleType("t2iscale.study.results")
    module.load_curves = load_curves
    monkeypatch.setitem(sys.modules, "t2iscale.study.results", module)
    out = _run_json(
        capsys,
        ["fit", "--study", str(tmp_path), "--x", "params", "--metric", "tifa", "--bootstrap", "50", "--json"],
    )
    assert calls == [(str(tmp_path), "tifa")]
    assert out["n_candidate_points"] == len(study_curves)


def _modules_after(code: str) -> set[str]:
    code += "\nimport sys\nprint(' '.join(sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_scaling_imports_no_torch():
    modules = _modules_after(
        "import t2iscale.scaling as scaling, t2iscale.scaling.cli\n"
        "for name in scaling.__all__:\n"
        "    getattr(scaling, name)  # every public name, so every submodule\n"
    )
    assert "t2iscale.scaling.fits" in modules and "scipy" in modules
    assert not {"torch", "diffusers", "transformers"} & modules


def test_cli_module_defers_scipy_so_help_stays_fast():
    assert "scipy" not in _modules_after("import t2iscale.scaling.cli")


def test_synthetic_study_is_not_degenerate(study_curves):
    # guards the fixture the CLI tests rely on: a frontier with several points and a rising trend
    frontier = pareto_frontier(scaling_points(study_curves, "compute"))
    assert len(frontier) >= 5
    assert np.corrcoef(np.log([p.x for p in frontier]), [p.value for p in frontier])[0, 1] > 0.8

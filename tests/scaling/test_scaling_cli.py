import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import synthetic_curves
from t2iscale.cli import main
from t2iscale.scaling.fits import fit_law, predict
from t2iscale.scaling.frontier import pareto_frontier
from t2iscale.scaling.points import Curve, save_points, scaling_points


@pytest.fixture
def points_file(tmp_path, study_curves):
    return save_points(tmp_path / "points.json", study_curves)


def _run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_json_matches_the_library(capsys, points_file, study_curves):
    out = _run_json(capsys, ["fit", "--points", str(points_file), "--x", "compute", "--json"])
    frontier = pareto_frontier(scaling_points(study_curves, "compute"))
    # a run gives several frontier points: one cluster each
    fit = fit_law([p.x for p in frontier], [p.value for p in frontier], clusters=[p.run_id for p in frontier])
    assert out["axis"] == "compute" and out["symbol"] == "C" and out["form"] == "power"
    assert out["metric"] == "tifa"
    assert out["n_points"] == len(frontier) == len(out["points"])
    assert out["n_runs"] == len({p.run_id for p in frontier}) < len(frontier)
    assert out["n_candidate_points"] == sum(len(c.steps) - 1 for c in study_curves)
    assert [(p["configuration"], p["step"]) for p in out["points"]] == [(p.run_id, p.step) for p in frontier]
    for name in ("a", "b"):
        entry = out["params"][name]
        assert entry["estimate"] == pytest.approx(fit.params[name])
        assert [entry["lo"], entry["hi"]] == pytest.approx(list(fit.interval(name)))
        assert entry["lo"] <= entry["estimate"] <= entry["hi"]
    assert out["r2"] == pytest.approx(fit.r2) and "cluster-robust CR2" in out["interval_method"]
    assert out["law"].startswith("S = ") and "·C^" in out["law"]
    assert all(p["interval"] is None and p["n_seeds"] == 1 for p in out["points"])  # the file has no samples


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
            "--json",
        ],
    )
    assert every["n_points"] == every["n_candidate_points"] == sum(len(c.steps) - 1 for c in study_curves)
    by_params = _run_json(capsys, ["fit", "--points", str(points_file), "--x", "params", "--json"])
    assert by_params["symbol"] == "N" and by_params["n_candidate_points"] == len(study_curves)
    assert by_params["params"]["b"]["estimate"] > 0  # bigger models end higher in the synthetic study


def test_fit_text_output(capsys, points_file):
    assert main(["fit", "--points", str(points_file), "--x", "data"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("S = ") and "·D^" in out
    assert "95% CI [" in out and "R² " in out and "points used" in out
    assert "900M params, 800M pairs" in out  # the best run is on the data envelope


def test_saturating_fit_from_a_csv_file(capsys, tmp_path):
    # eight model sizes whose final TIFA approaches a ceiling: S = 0.9 - 2·N^(-0.3)
    sizes = np.geomspace(1e5, 1e9, 8)
    noise = 0.003 * np.random.default_rng(0).standard_normal(sizes.size)
    curves = [
        Curve(
            f"n{i}",
            f"n{i}",
            int(n),
            n / 1e4,
            None,
            [1000],
            [32000],
            [1e12 * (i + 1)],
            [0.9 - 2 * n**-0.3 + e],
        )
        for i, (n, e) in enumerate(zip(sizes, noise))
    ]
    path = save_points(tmp_path / "points.csv", curves)
    out = _run_json(capsys, ["fit", "--points", str(path), "--x", "params", "--form", "saturating", "--json"])
    assert out["form"] == "saturating" and set(out["params"]) == {"s_inf", "a", "b"}
    assert out["params"]["s_inf"]["lo"] < 0.9 < out["params"]["s_inf"]["hi"]
    assert out["params"]["b"]["lo"] < 0.3 < out["params"]["b"]["hi"]
    assert out["n_points"] == 8 and "n − k df" in out["interval_method"]
    # the synthetic study's frontier holds points of 3 runs only: too few for 3 parameters
    main(
        [
            "fit",
            "--points",
            str(save_points(tmp_path / "study.csv", synthetic_curves())),
            "--x",
            "compute",
            "--form",
            "saturating",
        ]
    )
    assert "interval needs points from at least 4 runs, got 3" in capsys.readouterr().err


def test_predict_json(capsys, points_file, study_curves):
    at = 1e19  # 2.5x beyond the largest compute of the study (10x would take the law past TIFA 1)
    out = _run_json(
        capsys, ["predict", "--points", str(points_file), "--x", "compute", "--at", str(at), "--json"]
    )
    frontier = pareto_frontier(scaling_points(study_curves, "compute"))
    fit = fit_law([p.x for p in frontier], [p.value for p in frontier], clusters=[p.run_id for p in frontier])
    expected = predict(fit, at, (0.0, 1.0))
    prediction = out["prediction"]
    assert prediction["at"] == at and prediction["metric_range"] == [0.0, 1.0]
    assert [prediction["value"], prediction["lo"], prediction["hi"]] == pytest.approx(
        [expected.value, expected.lo, expected.hi]
    )
    assert prediction["lo"] < prediction["value"] < prediction["hi"] <= 1.0
    assert prediction["extrapolation_factor"] == pytest.approx(at / max(p.x for p in frontier))
    assert out["fit"]["law"] == fit.render("C")


def test_predict_text_flags_extrapolation(capsys, points_file):
    assert main(["predict", "--points", str(points_file), "--x", "params", "--at", "1e10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("S(N = 1e+10) = ") and "95% CI [" in out and "extrapolation" in out


def test_predict_outside_the_metric_range_is_refused(capsys, points_file):
    assert main(["predict", "--points", str(points_file), "--x", "compute", "--at", "1e40"]) == 1
    err = capsys.readouterr().err
    assert "outside the metric's range [0, 1]" in err and err.count("\n") == 1


def test_correlate_json(capsys, points_file):
    out = _run_json(capsys, ["correlate", "--points", str(points_file), "--json"])
    assert {(c["predictor"], c["method"]) for c in out["correlations"]} == {
        ("params", "spearman"),
        ("params", "pearson"),
        ("gmacs", "spearman"),
        ("gmacs", "pearson"),
    }
    assert all(c["coefficient"] > 0.5 for c in out["correlations"])
    assert all(c["p_method"] == "exact permutation test over 362880 orderings" for c in out["correlations"])
    assert [p["n_seeds"] for p in out["points"]] == [1] * 9


def test_errors_are_one_line(capsys, tmp_path, points_file):
    assert main(["fit", "--points", str(tmp_path / "missing.json"), "--x", "compute"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("t2iscale: error: ") and "missing.json: no such points file" in err
    assert err.count("\n") == 1
    assert main(["fit", "--points", str(points_file), "--x", "compute", "--metric", "fid"]) == 1
    assert "no curves for metric 'fid'" in capsys.readouterr().err
    assert main(["predict", "--points", str(points_file), "--x", "compute", "--at", "-1"]) == 1
    assert "--at must be a finite positive X" in capsys.readouterr().err
    # the params envelope of 3 model sizes has 3 points: too few for 3 parameters, and the error says where from
    assert (
        main(["fit", "--points", str(points_file), "--x", "params", "--form", "saturating", "--frontier"])
        == 1
    )
    err = capsys.readouterr().err
    assert "saturating law on 3 Pareto-frontier points (of 9) on N: a saturating law" in err
    assert "needs at least 4 points, got 3" in err


def _modules_after(code: str) -> set[str]:
    code += "\nimport sys\nprint(' '.join(sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_scaling_imports_no_torch():
    modules = _modules_after(
        "import t2iscale.scaling as scaling\n"
        "for name in scaling.__all__:\n"
        "    getattr(scaling, name)  # every public name, so every submodule\n"
    )
    assert "t2iscale.scaling.fits" in modules and "scipy" in modules
    assert not {"torch", "diffusers", "transformers"} & modules


def test_cli_module_defers_scipy_so_help_stays_fast():
    assert "scipy" not in _modules_after("import t2iscale.findings.cli")


def test_synthetic_study_is_not_degenerate(study_curves):
    # guards the fixture the CLI tests rely on: a frontier with several points and a rising trend
    frontier = pareto_frontier(scaling_points(study_curves, "compute"))
    assert len(frontier) >= 5
    assert np.corrcoef(np.log([p.x for p in frontier]), [p.value for p in frontier])[0, 1] > 0.8


def test_points_outside_the_metric_range_are_refused(capsys, tmp_path, study_curves):
    curves = [
        Curve(**{**curve.__dict__, "values": [v + 0.9 for v in curve.values]}) if i == 4 else curve
        for i, curve in enumerate(study_curves)
    ]
    path = save_points(tmp_path / "points.json", curves)
    assert main(["fit", "--points", str(path), "--x", "params"]) == 1
    err = capsys.readouterr().err
    assert f"run {study_curves[4].run_id!r} has TIFA" in err and "outside the metric's range [0, 1]" in err


def test_params_and_data_fits_use_every_configuration_unless_asked_for_the_frontier(capsys, points_file):
    every = _run_json(capsys, ["fit", "--points", str(points_file), "--x", "data", "--json"])
    frontier = _run_json(capsys, ["fit", "--points", str(points_file), "--x", "data", "--frontier", "--json"])
    assert every["n_points"] == every["n_candidate_points"] == 9
    assert frontier["n_points"] < 9


def test_where_is_for_studies_not_points_files(capsys, points_file):
    assert main(["fit", "--points", str(points_file), "--x", "params", "--where", "caption_policy=mix"]) == 1
    assert "--where selects a study's configurations" in capsys.readouterr().err

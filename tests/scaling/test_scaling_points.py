import json

import pytest

from t2iscale.errors import UserError
from t2iscale.scaling.points import Curve, load_points, save_points, scaling_points


def _curve(**overrides) -> Curve:
    fields = dict(
        run_id="r1",
        label="run one",
        params=1000,
        gmacs=2.5,
        dataset_noun_pairs=None,
        steps=[0, 10, 20],
        images_seen=[0, 40, 80],
        train_flops=[0.0, 1e6, 2e6],
        values=[0.1, 0.3, 0.4],
    )
    fields.update(overrides)
    return Curve(**fields)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_save_and_load_round_trip(tmp_path, study_curves, suffix):
    extra = _curve(run_id="no-sizes", params=None, gmacs=None, metric="clip")  # None sizes, other metric
    curves = [*study_curves, extra]
    path = save_points(tmp_path / f"points{suffix}", curves)
    loaded = load_points(path)
    assert loaded == curves
    assert loaded[0].category["counting"] == study_curves[0].category["counting"]
    assert loaded[-1].params is None and loaded[-1].category == {}


def test_load_keeps_only_the_asked_metric_and_names_the_present_ones(tmp_path, study_curves):
    path = save_points(tmp_path / "p.json", [*study_curves, _curve(metric="clip")])
    assert [c.run_id for c in load_points(path, metric="clip")] == ["r1"]
    assert len(load_points(path, metric="tifa")) == len(study_curves)
    with pytest.raises(UserError, match=r"no curves for metric 'fid'.*clip, tifa"):
        load_points(path, metric="fid")


def test_curve_normalises_sequences_to_tuples():
    curve = _curve()
    assert curve.steps == (0, 10, 20) and curve.values == (0.1, 0.3, 0.4)
    assert curve.final_value == 0.4 and curve.final_step == 20


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"steps": [0, 20, 10]}, "'steps': must be non-negative and strictly increasing"),
        ({"values": [0.1, 0.2]}, "'values': has 2 entries but 'steps' has 3"),
        ({"images_seen": [0, 80, 40]}, "'images_seen': decreases at step 20"),
        ({"params": -5}, "'params': must be positive"),
        ({"params": 1.5}, "'params': expected an integer"),
        ({"values": [0.1, float("nan"), 0.2]}, "'values': expected a finite number"),
        ({"category": {"counting": [1.0]}}, "'category.counting': has 1 entries"),
        ({"run_id": ""}, "'run_id': expected a non-empty string"),
    ],
)
def test_bad_curve_fields_name_the_key(overrides, match):
    with pytest.raises(UserError, match=match):
        _curve(**overrides)


def test_json_errors_name_file_curve_and_key(tmp_path):
    path = tmp_path / "bad.json"
    good = _curve().to_dict()
    path.write_text(json.dumps({"curves": [good, {**good, "run_id": "r2", "flops": [1]}]}))
    with pytest.raises(UserError, match=r"bad\.json: curves\[1\]: unknown key 'flops'"):
        load_points(path)
    missing = dict(good)
    del missing["train_flops"]
    path.write_text(json.dumps({"curves": [missing]}))
    with pytest.raises(UserError, match=r"curves\[0\]: missing key 'train_flops'"):
        load_points(path)
    path.write_text(json.dumps({"curves": [good, good]}))
    with pytest.raises(UserError, match="run 'r1' has two curves for metric 'tifa'"):
        load_points(path)
    path.write_text('{"curves": [\n  oops]}')
    with pytest.raises(UserError, match=r"bad\.json: line 2: invalid JSON"):
        load_points(path)


CSV_HEADER = "run_id,params,step,images_seen,train_flops,value\n"


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("a,10,0,0,0,0.1\na,10,1,4,1e6,zero\n", r"line 3: column 'value': expected a number, got 'zero'"),
        ("a,10,0,0,0,0.1\na,20,1,4,1e6,0.2\n", r"line 3: column 'params': 20 differs from 10 on line 2"),
        ("a,10,0,0,0,0.1\na,10,0,4,1e6,0.2\n", r"line 3: run 'a' metric 'tifa' has step 0 twice"),
        ("a,10,0,0,0,0.1\na,10,1,4\n", r"line 3: expected 6 cells"),
        (
            "a,10,0,8,0,0.1\na,10,1,4,1e6,0.2\n",
            r"run starting on line 2: curve 'a': key 'images_seen': decreases",
        ),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, rows, match):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_HEADER + rows)
    with pytest.raises(UserError, match=r"bad\.csv: " + match):
        load_points(path)


def test_csv_rejects_unknown_and_missing_columns(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("run_id,step,images_seen,train_flops,value,flops\n")
    with pytest.raises(UserError, match=r"line 1: unknown column 'flops'"):
        load_points(path)
    path.write_text("run_id,step,images_seen,value\n")
    with pytest.raises(UserError, match=r"line 1: missing column 'train_flops'"):
        load_points(path)


def test_csv_rows_may_come_in_any_order(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(CSV_HEADER + "b,5,1,4,1e6,0.5\na,10,1,4,1e6,0.2\nb,5,0,0,0,0.0\na,10,0,0,0,0.1\n")
    curves = load_points(path)
    assert [c.run_id for c in curves] == ["b", "a"]
    assert curves[0].steps == (0, 1) and curves[0].values == (0.0, 0.5)
    assert curves[1].label == "a" and curves[1].metric == "tifa" and curves[1].gmacs is None


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(UserError, match="no such points file"):
        load_points(tmp_path / "none.json")
    (tmp_path / "p.txt").write_text("")
    with pytest.raises(UserError, match=r"unknown points file type '\.txt'"):
        load_points(tmp_path / "p.txt")


def test_scaling_points_per_axis(study_curves):
    compute = scaling_points(study_curves, "compute")
    # every evaluation except the untrained step-0 one (zero FLOPs)
    assert len(compute) == sum(len(c.steps) - 1 for c in study_curves)
    assert all(p.x > 0 for p in compute)
    params = scaling_points(study_curves, "params")
    assert [(p.x, p.value, p.step) for p in params] == [
        (c.params, c.final_value, c.final_step) for c in study_curves
    ]
    data = scaling_points(study_curves, "data")
    assert [p.x for p in data] == [c.dataset_noun_pairs for c in study_curves]


def test_scaling_points_need_the_axis_size():
    with pytest.raises(UserError, match="run 'r1' has no 'dataset_noun_pairs'"):
        scaling_points([_curve()], "data")
    with pytest.raises(UserError, match="unknown scaling axis 'flops'"):
        scaling_points([_curve()], "flops")


def test_curve_accepts_numpy_arrays_and_scalars_as_a_database_loader_would_give():
    import numpy as np

    curve = _curve(
        params=np.int64(1000),
        gmacs=np.float32(2.5),
        steps=np.array([0, 10, 20]),
        images_seen=np.array([0, 40, 80]),
        train_flops=np.array([0.0, 1e6, 2e6]),
        values=np.array([0.1, 0.3, 0.4]),
    )
    assert curve == _curve()
    assert type(curve.params) is int and type(curve.values[0]) is float

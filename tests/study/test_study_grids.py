"""Several [[grids]] tables: the study's runs are the union of their products, a shared run planned once."""

import pytest

from t2iscale.errors import UserError
from t2iscale.study.plan import expand_grid, load_spec
from t2iscale.study.spec import parse_spec

BASE = {
    "model": {"backbone": "sdxl-c8-td1_1"},
    "data": {"world": "tiny", "resolution": 16, "size": 1000},
    "budget": {"total_steps": 10},
}


def spec(grids):
    return {"name": "grids", "base": BASE, "grids" if isinstance(grids, list) else "grid": grids}


def test_runs_are_the_union_of_the_grids_and_a_shared_run_is_planned_once():
    study = load_spec(
        spec(
            [
                {"backbones": ["sdxl-c12-td1_1", "sdxl-c8-td1_1"], "seeds": [0, 1]},
                {"caption_policies": ["alt", "mix"], "seeds": [0, 1]},
                {"dataset_sizes": [100, 1000], "seeds": [0, 1]},
            ]
        )
    )
    runs = expand_grid(study)
    slugs = [run.run_id.rsplit("-", 1)[0] for run in runs]
    # the reference (sdxl-c8, 1000 images, mix) is in all three grids: trained once per seed
    assert slugs == [
        "sdxl-c12-td1_1.n1000.mix.s0",
        "sdxl-c12-td1_1.n1000.mix.s1",
        "sdxl-c8-td1_1.n1000.mix.s0",
        "sdxl-c8-td1_1.n1000.mix.s1",
        "sdxl-c8-td1_1.n1000.alt.s0",
        "sdxl-c8-td1_1.n1000.alt.s1",
        "sdxl-c8-td1_1.n100.mix.s0",
        "sdxl-c8-td1_1.n100.mix.s1",
    ]
    assert [run.position for run in runs] == list(range(8))
    assert len({run.run_id for run in runs}) == 8
    # one grid written as a list of one is the same study as a plain [grid]
    single = expand_grid(load_spec(spec({"backbones": ["sdxl-c8-td1_1"], "seeds": [0]})))
    listed = expand_grid(load_spec(spec([{"backbones": ["sdxl-c8-td1_1"], "seeds": [0]}])))  # [[grids]]
    assert [r.run_id for r in single] == [r.run_id for r in listed]


def test_the_findings_preset_shares_its_reference_runs():
    runs = expand_grid(load_spec("findings"))
    assert len(runs) == 30  # 10 configurations x 3 seeds; 4 grids would name the reference 3 times
    reference = [run for run in runs if run.run_id.startswith("sdxl-c8-td1_1.n60000.mix.")]
    assert len(reference) == 3


@pytest.mark.parametrize(
    "grids, overrides, message",
    [
        ([], [], "grids: List should have at least 1 item"),
        ([{"seeds": [0]}, {"seeds": [1]}], ["grid.seeds=[2]"], "grids are [[grids]] tables"),
        ([{"seeds": [0]}, {"seeds": [1]}], ["grids.0.seeds=[2]"], "grids are [[grids]] tables"),
        ([{"backbones": ["sdxl-c4-td1_1"]}], ["base.model.backbone=sdxl-c6-td1_1"], "grid.backbones sets"),
        ([{"seeds": [0]}, {"backbons": ["sdxl-c4-td1_1"]}], [], "grids.1.backbons: unknown key"),
    ],
)
def test_bad_grids_are_one_clear_line(grids, overrides, message):
    with pytest.raises(UserError) as error:
        load_spec(spec(grids), overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_parse_keeps_the_grids_in_file_order():
    parsed, _ = parse_spec(spec([{"seeds": [1]}, {"seeds": [0]}]))
    assert [grid.seeds for grid in parsed.each_grid()] == [[1], [0]]
    with pytest.raises(UserError, match="not both"):
        parse_spec({**spec([{"seeds": [1]}]), "grid": {"seeds": [0]}})


def test_a_base_override_stands_where_some_grid_takes_the_base_value():
    """With [[grids]], --set base.X is refused only when every grid sets X (else it reaches the grids without it)."""
    grids = [{"backbones": ["sdxl-c4-td1_1"], "seeds": [0]}, {"caption_policies": ["alt"], "seeds": [0]}]
    runs = expand_grid(load_spec(spec(grids), ["base.model.backbone=sdxl-c6-td1_1"]))
    assert sorted(run.backbone for run in runs) == ["sdxl-c4-td1_1", "sdxl-c6-td1_1"]
    with pytest.raises(UserError, match="grid.seeds sets seed"):
        load_spec(spec(grids), ["base.seed=3"])

"""A study's run ids stay the same when the config gains keys: keys added after the first ids enter a run's
identity only when set away from their defaults, so an existing study resumes and its folders are not locked."""

import json

import pytest

from t2iscale.study.plan import expand_grid, load_spec
from t2iscale.train.config import KEYS_SINCE_FIRST_IDS, TrainConfig, run_identity, without_late_defaults

SPEC = {
    "name": "pinned",
    "base": {
        "data": {"size": 64, "resolution": 16, "world": "tiny"},
        "text": {"dim": 16, "max_length": 12, "layers": 1, "heads": 2},
        "recipe": {"global_batch": 8, "lr": 1e-3},
        "budget": {"total_steps": 4},
        "eval": {"every_steps": 2, "per_category": 1},
    },
    "grid": {"backbones": ["sdxl-c8-td1_1"], "seeds": [0, 1]},
}
# The ids this spec had before any key of KEYS_SINCE_FIRST_IDS existed (commit d80c545). A new config key with
# a default must keep them: add it to KEYS_SINCE_FIRST_IDS.
PINNED = ["sdxl-c8-td1_1.n64.mix.s0-be086e", "sdxl-c8-td1_1.n64.mix.s1-30dee8"]


def test_run_ids_of_a_fixed_config_never_change():
    assert [run.run_id for run in expand_grid(load_spec(SPEC))] == PINNED


def test_a_late_key_set_away_from_its_default_is_part_of_the_identity():
    changed = json.loads(json.dumps(SPEC))
    changed["base"]["data"]["expect_resolution"] = 16
    ids = [run.run_id for run in expand_grid(load_spec(changed))]
    assert ids != PINNED and [i.rsplit("-", 1)[0] for i in ids] == [i.rsplit("-", 1)[0] for i in PINNED]


@pytest.mark.parametrize("key", KEYS_SINCE_FIRST_IDS)
def test_every_late_key_exists_and_an_old_config_without_it_reads_the_same(key):
    config = TrainConfig.model_validate({**SPEC["base"], "run_dir": "x"}).model_dump(mode="json")
    section, name = key.split(".")
    assert name in config[section]  # a listed key that no longer exists is a stale entry
    old = json.loads(json.dumps(config))
    del old[section][name]  # a config.json written before the key existed
    assert without_late_defaults(old) == without_late_defaults(config)
    assert run_identity(old) == run_identity(config)


def test_resuming_a_folder_written_before_the_late_keys_is_not_refused(tmp_path):
    from t2iscale.train.loop import _check_same_run
    from t2iscale.train.run_dir import RunDir

    config = TrainConfig.model_validate({**SPEC["base"], "run_dir": str(tmp_path / "run")})
    run = RunDir(config.run_dir)
    run.create()
    old = config.model_dump(mode="json")
    for key in KEYS_SINCE_FIRST_IDS:
        section, name = key.split(".")
        old[section].pop(name)
    run.config_file.write_text(json.dumps(old))
    (run.final).mkdir(parents=True)  # the folder holds results
    _check_same_run(run, config)  # no error
    other = config.model_copy(update={"seed": 5})
    with pytest.raises(Exception, match="differs in seed"):
        _check_same_run(run, other)

"""A study folder the user cannot write to is read from a snapshot, never written: readers work, writers get a
one-line error naming it.

This suite runs as root on CI, where file modes do not stop writes, so the user's lack of write access is
simulated by `_writable`; what is asserted (the study's files untouched, the snapshot's content) holds either way.
Checked by hand as an unprivileged user on a `chmod a-w` copy of a demo study: compare, fit, correlate, predict,
study status and report --out elsewhere read it; report into it, study run, study sync and demo into it refuse.
"""

import re
import sqlite3
from contextlib import closing

import pytest
from study_fixtures import tiny_spec
from test_registry_samples import old_study

from t2iscale.errors import UserError
from t2iscale.study import registry as registry_module
from t2iscale.study.plan import load_spec
from t2iscale.study.registry import StudyRegistry, db_path
from t2iscale.study.runner import register_study


@pytest.fixture
def study(tmp_path):
    study = tmp_path / "study"
    register_study(load_spec(tiny_spec(backbones=["sdxl-c8-td1_1", "sdxl-c4-td1_1"])), study)
    return study


@pytest.fixture
def not_writable(monkeypatch):
    monkeypatch.setattr(registry_module, "_writable", lambda path: False)


def folder_state(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_a_read_only_study_is_read_from_a_snapshot_and_refuses_changes(study, not_writable):
    before = folder_state(study)
    with StudyRegistry(study) as registry:
        assert registry.read_only
        assert sorted(row["backbone"] for row in registry.runs()) == ["sdxl-c4-td1_1", "sdxl-c8-td1_1"]
        run_id = registry.runs()[0]["run_id"]
        refusal = re.escape(f"{study} is read-only to you")
        with pytest.raises(UserError, match=refusal):
            registry.claim(run_id, owner="me", stale_after_s=60)
        with pytest.raises(UserError, match=refusal):
            registry.heartbeat(run_id, owner="me")
        snapshot = registry._snapshot_dir
        assert snapshot.is_dir() and snapshot != study
    assert not snapshot.exists()  # the copy goes with the registry
    assert folder_state(study) == before  # no -wal, no -shm, not a byte of the database changed


def test_the_snapshot_holds_the_logs_committed_writes_and_not_an_open_transaction(study, not_writable):
    with closing(sqlite3.connect(db_path(study), isolation_level=None)) as owner:
        owner.execute("PRAGMA wal_autocheckpoint = 0")  # keep the commit in the log, as a busy runner may
        owner.execute("UPDATE runs SET status = 'finished' WHERE backbone = 'sdxl-c8-td1_1'")
        owner.execute("BEGIN IMMEDIATE")
        owner.execute("UPDATE runs SET status = 'failed'")  # not committed while the snapshot is taken
        assert db_path(study).with_name("study.sqlite-wal").stat().st_size > 0
        with StudyRegistry(study) as registry:
            statuses = {row["backbone"]: row["status"] for row in registry.runs()}
        owner.execute("ROLLBACK")
    assert statuses == {"sdxl-c8-td1_1": "finished", "sdxl-c4-td1_1": "pending"}


def test_an_older_read_only_study_is_brought_up_to_date_in_its_snapshot_only(tmp_path, monkeypatch):
    study, _ = old_study(tmp_path)
    monkeypatch.setattr(registry_module, "_writable", lambda path: False)
    before = folder_state(study)
    with StudyRegistry(study) as registry:
        (old,) = registry.evaluations()
        assert (old["value"], old["samples"], old["n_images"]) == (0.25, None, None)
    assert folder_state(study) == before


def test_a_study_changing_during_every_copy_is_an_error_not_a_torn_read(study, not_writable, monkeypatch):
    states = iter(range(1000))
    monkeypatch.setattr(registry_module, "_file_states", lambda files: next(states))
    with pytest.raises(
        UserError, match=re.escape(f"{study} is read-only to you and changed during 5 attempts")
    ):
        StudyRegistry(study)


def test_registering_into_a_read_only_folder_is_refused_before_anything_is_written(study, not_writable):
    before = folder_state(study)
    message = re.escape(f"{db_path(study)} is read-only to you and a study run writes it")
    with pytest.raises(UserError, match=message):
        register_study(load_spec(tiny_spec(backbones=["sdxl-c6-td1_1"])), study)
    assert folder_state(study) == before

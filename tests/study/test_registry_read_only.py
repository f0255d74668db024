"""A study folder the user cannot write to is read, not written: readers work, writers get a one-line error.

This suite runs as root on CI, where file modes do not stop writes, so the user's lack of write access is
simulated by `_writable`; checked by hand as an unprivileged user on a chmod a-w copy of a demo study (compare, fit,
study status, report --out elsewhere read it; report into it, study run and demo into it say why they cannot).
"""

import sqlite3

import pytest
from study_fixtures import tiny_spec

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


def test_a_read_only_study_reads_and_refuses_writes_naming_the_folder(study, not_writable):
    with StudyRegistry(study) as registry:
        assert registry.read_only
        assert sorted(row["backbone"] for row in registry.runs()) == ["sdxl-c4-td1_1", "sdxl-c8-td1_1"]
        run_id = registry.runs()[0]["run_id"]
        with pytest.raises(UserError, match=f"{study} is read-only to you"):
            registry.claim(run_id, owner="me", stale_after_s=60)
        with pytest.raises(UserError, match="read-only"):
            registry.heartbeat(run_id, owner="me")
        # The connection itself cannot write either: the refusal is not only the registry's own check.
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            registry.connection.execute("UPDATE runs SET status = 'failed'")
    with sqlite3.connect(db_path(study)) as db:
        assert {row[0] for row in db.execute("SELECT status FROM runs")} == {"pending"}


def test_registering_into_a_read_only_folder_is_refused_before_anything_is_written(study, not_writable):
    before = db_path(study).read_bytes()
    with pytest.raises(UserError, match=f"{study} is read-only to you; a study run needs to write it"):
        register_study(load_spec(tiny_spec(backbones=["sdxl-c6-td1_1"])), study)
    assert db_path(study).read_bytes() == before


def test_without_shared_memory_a_checkpointed_study_is_read_as_immutable(study, not_writable, monkeypatch):
    # What an unprivileged reader meets when no runner has the study open: SQLite cannot open the WAL database
    # read-only (it may not create the -shm file). Simulated here by failing the `mode=ro` open.
    real_open = registry_module._open

    def open_without_shm(target, uri=False):
        if uri and str(target).endswith("?mode=ro"):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real_open(target, uri)

    monkeypatch.setattr(registry_module, "_open", open_without_shm)
    wal = db_path(study).with_name("study.sqlite-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # the registering process folded its log in on close
    with StudyRegistry(study) as registry:
        assert len(registry.runs()) == 2

    wal.write_bytes(b"\0" * 64)  # a log with transactions the database file does not have yet
    with pytest.raises(
        UserError, match=r"write-ahead log study\.sqlite-wal holds writes not yet in study\.sqlite"
    ):
        StudyRegistry(study)

"""The study database keeps per-image scores and N: the new columns, their migration, and `load_curves`."""

import json
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest
from study_fixtures import cli_env, tiny_spec

from t2iscale.errors import UserError
from t2iscale.findings.curves import load_curves
from t2iscale.study.plan import load_spec
from t2iscale.study.registry import StudyRegistry, db_path
from t2iscale.study.runner import register_study

# The evaluations table as databases made before per-image scores were kept have it.
OLD_EVALUATIONS = """
CREATE TABLE evaluations (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step INTEGER NOT NULL,
    images_seen INTEGER,
    train_flops REAL,
    metric TEXT NOT NULL,
    value REAL,  -- NULL when the metric was not finite (SQLite stores NaN as NULL)
    categories TEXT NOT NULL DEFAULT '{}',
    chance_level REAL,
    PRIMARY KEY (run_id, step, metric)
)
"""

SAMPLES = {"prompt_id": ["a", "b", "a", "b"], "seed": [0, 0, 1, 1], "value": [1.0, 0.5, 0.5, 0.0]}


def old_study(tmp_path):
    """A registered one-run study whose evaluations table has the old layout and one old row; its run id."""
    study = tmp_path / "study"
    (planned,), _ = register_study(load_spec(tiny_spec(backbones=["sdxl-c8-td1_1"])), study)
    with closing(sqlite3.connect(db_path(study))) as db, db:
        db.execute("DROP TABLE evaluations")
        db.execute(OLD_EVALUATIONS)
        db.execute(
            "INSERT INTO evaluations (run_id, step, images_seen, train_flops, metric, value) "
            "VALUES (?, 2, 16, 1e9, 'tifa', 0.25)",
            (planned.run_id,),
        )
    return study, planned.run_id


def columns(study) -> list[str]:
    with closing(sqlite3.connect(db_path(study))) as db:
        return [row[1] for row in db.execute("PRAGMA table_info(evaluations)")]


def log_line(step, metric, value, **extra):
    return {
        "step": step,
        "images_seen": 8 * step,
        "train_flops": 1e9 * step,
        "metric": metric,
        "value": value,
    } | extra


def test_an_old_database_gains_the_columns_and_imports_samples_and_n_images(tmp_path):
    study, run_id = old_study(tmp_path)
    assert "samples" not in columns(study)
    with StudyRegistry(study) as registry:
        (old,) = registry.evaluations()
        assert (old["value"], old["samples"], old["n_images"]) == (0.25, None, None)  # the old row stays
        assert columns(study)[-2:] == ["samples", "n_images"]

        # eval.jsonl as an older version wrote it (step 2), then as this one does (step 4, and FID's N).
        lines = [
            log_line(2, "tifa", 0.25),
            log_line(4, "tifa", 0.5, n_images=4, samples=SAMPLES),
            log_line(4, "oracle_fid", 3.0, n_images=4),
        ]
        run_dir = registry.run_dir(registry.run(run_id))
        (run_dir / "eval").mkdir(parents=True)
        (run_dir / "eval" / "eval.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        assert registry.import_results(run_id) == 3
        rows = {(row["step"], row["metric"]): row for row in registry.evaluations()}
    assert (rows[2, "tifa"]["samples"], rows[2, "tifa"]["n_images"]) == (None, None)
    assert json.loads(rows[4, "tifa"]["samples"]) == SAMPLES and rows[4, "tifa"]["n_images"] == 4
    assert (rows[4, "oracle_fid"]["samples"], rows[4, "oracle_fid"]["n_images"]) == (None, 4)

    (tifa,) = load_curves(study, "tifa")
    assert tifa.samples[0] is None and tifa.samples[1].to_dict() == SAMPLES
    assert tifa.samples[1].mean == tifa.values[1]
    (fid,) = load_curves(study, "oracle_fid")
    assert fid.samples is None  # no evaluation of the curve has samples

    with StudyRegistry(study):  # opening it again changes nothing
        assert columns(study)[-2:] == ["samples", "n_images"]


OPEN_WHEN_TOLD = """
import pathlib, sys, time
from t2iscale.study.registry import StudyRegistry
study, ready, go = sys.argv[1:]
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.001)
StudyRegistry(study).close()
"""


def test_processes_opening_an_old_study_at_once_add_the_columns_once(tmp_path):
    study, _ = old_study(tmp_path)
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD, str(study), str(tmp_path / f"ready{i}"), str(go)],
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
        assert time.time() < deadline and all(process.poll() is None for process in processes)
        time.sleep(0.01)
    go.touch()  # all of them look for the columns at about the same moment
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    assert columns(study).count("samples") == columns(study).count("n_images") == 1


def test_broken_samples_in_the_database_are_a_user_error_naming_the_run(tmp_path):
    study, run_id = old_study(tmp_path)
    with StudyRegistry(study) as registry, registry.transaction() as db:
        db.execute(
            "UPDATE evaluations SET samples = ? WHERE run_id = ?", (json.dumps({"prompt_id": ["a"]}), run_id)
        )
    with pytest.raises(
        UserError, match=re.escape(f"curve '{run_id}': per-sample scores: missing key 'seed'")
    ):
        load_curves(study, "tifa")

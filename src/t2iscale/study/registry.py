"""The study database, `<study_dir>/study.sqlite`: the spec, the runs and their status, and the evaluations.

    study        key/value: the spec (JSON) it was created with, the format version
    runs         one row per grid point: ids, sizes (params, GMACs, D), status, claim (owner, heartbeat), timing,
                 throughput, error
    evaluations  one row per (run_id, step, metric): images seen, training FLOPs, value, per-category values,
                 images scored (`n_images`) and per-image scores (`samples`: `SampleScores` JSON, NULL for set
                 statistics such as FID and for evaluations logged before samples were kept)

Several runners (processes, Slurm jobs) share it. A run is claimed in a `BEGIN IMMEDIATE` transaction, so two
runners can never both see it free; the connection waits (busy timeout) instead of failing while another holds
the write lock. WAL mode lets readers (`t2iscale study status`) read while a runner writes; a study whose runs are
Slurm jobs on other nodes uses the rollback journal instead, because WAL needs shared memory on one host.

A study folder the user cannot write to (a colleague's, a shared archive) is read from a snapshot copy, since
SQLite writes beside any database it opens (`_snapshot`): `compare`, `fit`, `study status` and `report --out`
elsewhere read it; anything that would change it says so, naming the folder, before writing anything.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.study.ownership import claim_is_abandoned
from t2iscale.train.jsonl import read_jsonl
from t2iscale.train.run_dir import RunDir

DB_FILE = "study.sqlite"
SPEC_FILE = "study.json"
FORMAT_VERSION = 1
BUSY_TIMEOUT_S = 120.0
# SQLite's write-ahead log and rollback journal: what a snapshot copies beside the database (-shm is an index only).
JOURNAL_SUFFIXES = ("-wal", "-journal")
SNAPSHOT_ATTEMPTS = 5

# pending: not started; queued: submitted as a Slurm job; running: claimed; finished / failed / diverged: done
# (failed runs are retried when the study runs again; diverged ones are not: the same seed diverges again).
STATUSES = ("pending", "queued", "running", "finished", "failed", "diverged")
CLAIMABLE = ("pending", "queued", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    backbone TEXT NOT NULL,
    family TEXT NOT NULL,
    params INTEGER,
    gmacs REAL,
    train_gflops_per_image REAL,
    size_note TEXT,
    dataset_size INTEGER,
    caption_policy TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dataset_noun_pairs INTEGER,
    total_steps INTEGER NOT NULL,
    global_batch INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    started_at REAL,
    claimed_at REAL,
    finished_at REAL,
    elapsed_s REAL,
    run_dir TEXT NOT NULL,
    owner TEXT,
    heartbeat_at REAL,
    job_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    images_per_s REAL,
    step INTEGER,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step INTEGER NOT NULL,
    images_seen INTEGER,
    train_flops REAL,
    metric TEXT NOT NULL,
    value REAL,  -- NULL when the metric was not finite (SQLite stores NaN as NULL)
    categories TEXT NOT NULL DEFAULT '{}',
    chance_level REAL,
    samples TEXT,
    n_images INTEGER,
    PRIMARY KEY (run_id, step, metric)
);
"""

# Columns added to tables after the first studies were made: opening an older database adds them (NULL there).
ADDED_COLUMNS = {"evaluations": (("samples", "TEXT"), ("n_images", "INTEGER"))}


@dataclass(frozen=True)
class Claim:
    claimed: bool
    reason: str  # claimed: 'new', 'retry', 'took over (dead|stale) from <owner>'; else why not


def db_path(study_dir: str | Path) -> Path:
    return Path(study_dir) / DB_FILE


def require_study(study_dir: str | Path) -> Path:
    """The database of an existing study, or a UserError naming the folder."""
    path = db_path(study_dir)
    if Path(study_dir).is_file() and Path(study_dir).name == DB_FILE:
        raise UserError(f"{study_dir} is the study's database; pass the folder that holds it")
    if not path.is_file():
        raise UserError(f"{study_dir} is not a study folder (no {DB_FILE}; `t2iscale study run` creates one)")
    return path


def _writable(path: Path) -> bool:
    """Whether this user may write the database (and its journal files beside it) or, before it exists, its folder."""
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK)
    journals = [path.with_name(path.name + suffix) for suffix in (*JOURNAL_SUFFIXES, "-shm")]
    return all(os.access(file, os.W_OK) for file in [path, *journals] if file.exists()) and os.access(
        path.parent, os.W_OK | os.X_OK
    )


def _open(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every write below states its own BEGIN IMMEDIATE.
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return connection


def _file_states(files: list[Path]) -> list[tuple[int, int] | None]:
    states = []
    for file in files:
        try:
            status = file.stat()
            states.append((status.st_size, status.st_mtime_ns))
        except FileNotFoundError:
            states.append(None)
    return states


def _snapshot(path: Path, into: Path) -> Path:
    """Copy the database and its journals into `into`; the copy opens as the study stood at one moment.

    SQLite cannot read a database it may not write without writing beside it: a WAL database needs its -shm file,
    and a reader opening one `mode=ro` creates -wal and -shm files that then block the owner's writes. A copy is
    read instead: the committed transactions of the log (-wal) are replayed and an interrupted one (-journal)
    rolled back when the copy opens, as they would be for the owner. A copy taken while a runner wrote is taken
    again (studies are small: a whole demo study is about 0.2 MB).
    """
    sources = [path, *(path.with_name(path.name + suffix) for suffix in JOURNAL_SUFFIXES)]
    for _ in range(SNAPSHOT_ATTEMPTS):
        before = _file_states(sources)
        for source in sources:
            target = into / source.name
            target.unlink(missing_ok=True)
            try:
                shutil.copyfile(source, target)
            except FileNotFoundError:
                if source == path:
                    raise
            except PermissionError:
                raise UserError(f"cannot read {source}: permission denied") from None
        if _file_states(sources) == before:
            return into / path.name
        time.sleep(0.05)
    raise UserError(
        f"{path.parent} is read-only to you and changed during {SNAPSHOT_ATTEMPTS} attempts to copy it; try again"
    )


class StudyRegistry:
    def __init__(self, study_dir: str | Path, create: bool = False, shared_filesystem: bool = False):
        self.study_dir = Path(study_dir)
        if create:
            try:
                self.study_dir.mkdir(parents=True, exist_ok=True)
            except PermissionError:
                raise UserError(
                    f"cannot create the study folder {self.study_dir}: permission denied"
                ) from None
            path = db_path(self.study_dir)
            written = path if path.exists() else self.study_dir
            if not _writable(written):
                raise UserError(
                    f"{written} is read-only to you and a study run writes it: choose another study folder, or copy "
                    "this one"
                )
        else:
            path = require_study(self.study_dir)
        self.path = path
        # Only an existing study can be read-only: it is read from a snapshot in a temporary folder (`_snapshot`).
        self.read_only = not create and not _writable(path)
        self._snapshot_dir: Path | None = None
        if self.read_only:
            self._snapshot_dir = Path(tempfile.mkdtemp(prefix="t2iscale-study-"))
            # Removed by close(), or when the registry is collected unclosed; either way once.
            self._remove_snapshot = weakref.finalize(
                self, shutil.rmtree, self._snapshot_dir, ignore_errors=True
            )
            self.connection = _open(_snapshot(path, self._snapshot_dir))
        else:
            self.connection = _open(path)
        if create:
            self.set_journal_mode(shared_filesystem)
            # One statement at a time inside our transaction (executescript would commit on its own).
            with self.transaction() as db:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
        elif not self._has_tables():
            raise UserError(f"{study_dir} is not a study folder ({DB_FILE} has no study tables)")
        self._add_missing_columns()

    # -- plumbing --------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.connection.close()
        if self._snapshot_dir is not None:
            self._remove_snapshot()

    def __enter__(self) -> StudyRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _has_tables(self) -> bool:
        names = {
            row[0] for row in self.connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        return {"study", "runs", "evaluations"} <= names

    def _missing_columns(self, db: sqlite3.Connection) -> list[tuple[str, str, str]]:
        missing = []
        for table, columns in ADDED_COLUMNS.items():
            present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            missing += [(table, name, kind) for name, kind in columns if name not in present]
        return missing

    def _add_missing_columns(self) -> None:
        """Bring a database made by an older version up to the current schema."""
        # Look first without the write lock, so opening a current database (the usual case, and readers such as
        # `study status`) never waits for a runner's write; then look again under the lock, because another
        # process opening the same study may have added the columns in between.
        if not self._missing_columns(self.connection):
            return
        # A read-only study's snapshot is this process's own copy: it is brought up to date, not the study.
        with nullcontext(self.connection) if self.read_only else self.transaction() as db:
            for table, name, kind in self._missing_columns(db):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def set_journal_mode(self, shared_filesystem: bool) -> None:
        mode = "DELETE" if shared_filesystem else "WAL"
        for _ in range(50):
            try:
                self.connection.execute(f"PRAGMA journal_mode = {mode}")
                return
            except sqlite3.OperationalError:  # another runner is setting it up at the same moment
                time.sleep(0.1)

    def _require_writable(self) -> None:
        if self.read_only:
            raise UserError(
                f"{self.study_dir} is read-only to you: it can be read (compare, fit, study status, report --out "
                "elsewhere) but not changed; copy the folder to change it"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front, so check-then-set is atomic."""
        self._require_writable()
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- the spec ---------------------------------------------------------------------------------------------

    def stored_spec(self) -> dict | None:
        row = self.connection.execute("SELECT value FROM study WHERE key = 'spec'").fetchone()
        return json.loads(row[0]) if row else None

    def register(self, spec_json: dict, planned: list, sizes: dict[str, dict]) -> list[str]:
        """Record the spec and every planned run not yet known; refuse a spec that changes existing runs.

        `planned` are `PlannedRun`s in grid order; `sizes[run_id]` holds params, gmacs, train_gflops_per_image,
        size_note and dataset_noun_pairs for each new run. Returns the ids of the runs added.
        """
        added = []
        with self.transaction() as db:
            old_spec = self.stored_spec()
            known = {row["run_id"] for row in db.execute("SELECT run_id FROM runs")}
            new_ids = {run.run_id for run in planned}
            missing = sorted(known - new_ids)
            if missing:
                raise UserError(spec_change_message(self.study_dir, old_spec, spec_json, missing))
            for run in planned:
                if run.run_id in known:
                    # Same id, same trained model; the config may differ in speed-only keys (compile mode,
                    # prefetch depth), which the run's next attempt then uses.
                    db.execute(
                        "UPDATE runs SET position = ?, config = ? WHERE run_id = ?",
                        (run.position, json.dumps(run.config), run.run_id),
                    )
                    continue
                size = sizes[run.run_id]
                db.execute(
                    """INSERT INTO runs (run_id, position, config_hash, backbone, family, params, gmacs,
                    train_gflops_per_image, size_note, dataset_size, caption_policy, seed, dataset_noun_pairs,
                    total_steps, global_batch, status, run_dir, config)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)""",
                    (
                        run.run_id,
                        run.position,
                        run.config_hash,
                        run.backbone,
                        size["family"],
                        size["params"],
                        size["gmacs"],
                        size["train_gflops_per_image"],
                        size["size_note"] or None,
                        run.dataset_size,
                        run.caption_policy,
                        run.seed,
                        size["dataset_noun_pairs"],
                        run.total_steps,
                        run.global_batch,
                        run.relative_dir,
                        json.dumps(run.config),
                    ),
                )
                added.append(run.run_id)
            db.execute(
                "INSERT OR REPLACE INTO study (key, value) VALUES ('spec', ?), ('format_version', ?)",
                (json.dumps(spec_json), str(FORMAT_VERSION)),
            )
            if old_spec is None:
                db.execute(
                    "INSERT OR REPLACE INTO study (key, value) VALUES ('created_at', ?)", (str(time.time()),)
                )
        return added

    # -- reading ----------------------------------------------------------------------------------------------

    def runs(self) -> list[dict]:
        return [dict(row) for row in self.connection.execute("SELECT * FROM runs ORDER BY position")]

    def run(self, run_id: str) -> dict:
        row = self.connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UserError(f"study {self.study_dir} has no run {run_id!r}")
        return dict(row)

    def evaluations(self, metric: str | None = None) -> list[dict]:
        query = "SELECT * FROM evaluations"
        args: tuple = ()
        if metric is not None:
            query += " WHERE metric = ?"
            args = (metric,)
        rows = self.connection.execute(query + " ORDER BY run_id, metric, step", args)
        return [dict(row) for row in rows]

    def metrics(self) -> list[str]:
        return [
            row[0]
            for row in self.connection.execute("SELECT DISTINCT metric FROM evaluations ORDER BY metric")
        ]

    def run_dir(self, row: dict) -> Path:
        return self.study_dir / row["run_dir"]

    # -- claims -----------------------------------------------------------------------------------------------

    def claim(self, run_id: str, owner: str, stale_after_s: float, retry_diverged: bool = False) -> Claim:
        """Atomically take a run to train it: free, failed, queued for us, or abandoned by a dead owner."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, owner, heartbeat_at FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise UserError(f"study {self.study_dir} has no run {run_id!r}")
            status, holder = row["status"], row["owner"]
            if status == "finished":
                return Claim(False, "finished")
            if status == "diverged" and not retry_diverged:
                return Claim(False, "diverged")
            reason = "retry" if status in ("failed", "diverged") else "new"
            if status == "running" and holder != owner:
                why = claim_is_abandoned(holder, row["heartbeat_at"], stale_after_s)
                if why is None:
                    return Claim(False, f"held by {holder}")
                reason = f"took over ({why}) from {holder}"
            db.execute(
                """UPDATE runs SET status = 'running', owner = ?, heartbeat_at = ?, claimed_at = ?,
                started_at = COALESCE(started_at, ?), attempts = attempts + 1, error = NULL WHERE run_id = ?""",
                (owner, now, now, now, run_id),
            )
            return Claim(True, reason)

    def heartbeat(self, run_id: str, owner: str) -> bool:
        self._require_writable()
        cursor = self.connection.execute(
            "UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND owner = ? AND status = 'running'",
            (time.time(), run_id, owner),
        )
        return cursor.rowcount == 1

    def release(self, run_id: str, owner: str, status: str, error: str | None = None) -> bool:
        """End a claim with the run's outcome; the owner stays recorded (who trained it). False if not ours."""
        assert status in STATUSES, status
        now = time.time()
        with self.transaction() as db:
            cursor = db.execute(
                """UPDATE runs SET status = ?, error = ?, heartbeat_at = NULL,
                finished_at = CASE WHEN ? = 'finished' THEN ? ELSE finished_at END,
                elapsed_s = COALESCE(elapsed_s, 0) + (? - COALESCE(claimed_at, ?))
                WHERE run_id = ? AND owner = ? AND status = 'running'""",
                (status, error, status, now, now, now, run_id, owner),
            )
            return cursor.rowcount == 1

    def mark_queued(self, run_id: str, job_id: str | None) -> None:
        """Submitted as a job (not while someone trains it, and never over a finished result)."""
        with self.transaction() as db:
            db.execute(
                """UPDATE runs SET status = 'queued', job_id = ?, error = NULL
                WHERE run_id = ? AND status NOT IN ('running', 'finished')""",
                (job_id, run_id),
            )

    def set_job_id(self, run_id: str, job_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET job_id = ? WHERE run_id = ?", (job_id, run_id))

    def release_queued(self, run_id: str, error: str) -> None:
        """A job that never got to claim its run (submission failed, the job died first): mark the run failed."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'failed', error = ? WHERE run_id = ? AND status = 'queued'",
                (error, run_id),
            )

    def mark_finished_from_folder(self, run_id: str) -> None:
        """A run whose folder says finished, while the database does not (its runner died right after)."""
        with self.transaction() as db:
            db.execute(
                """UPDATE runs SET status = 'finished', error = NULL, heartbeat_at = NULL,
                finished_at = COALESCE(finished_at, ?) WHERE run_id = ? AND status != 'finished'""",
                (time.time(), run_id),
            )

    def release_abandoned(self, stale_after_s: float) -> list[str]:
        """Set running runs whose owner is gone back to pending (for `study sync` / `status`)."""
        released = []
        with self.transaction() as db:
            for row in db.execute(
                "SELECT run_id, owner, heartbeat_at FROM runs WHERE status = 'running'"
            ).fetchall():
                why = claim_is_abandoned(row["owner"], row["heartbeat_at"], stale_after_s)
                if why:
                    db.execute(
                        "UPDATE runs SET status = 'pending', error = ? WHERE run_id = ?",
                        (f"claim of {row['owner']} released ({why})", row["run_id"]),
                    )
                    released.append(row["run_id"])
        return released

    def update_sizes(self, run_id: str, size: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET params = ?, gmacs = ?, train_gflops_per_image = ?, size_note = ? WHERE run_id = ?",
                (
                    size["params"],
                    size["gmacs"],
                    size["train_gflops_per_image"],
                    size["size_note"] or None,
                    run_id,
                ),
            )

    # -- results ----------------------------------------------------------------------------------------------

    def import_results(self, run_id: str) -> int:
        """Copy a run folder's evaluations and throughput into the database (idempotent); returns rows imported.

        The folder is the truth: the run's evaluation rows are replaced by the lines of its `eval/eval.jsonl`
        (a resumed run drops lines logged after its checkpoint, and the database follows).
        """
        row = self.run(run_id)
        run = RunDir(self.run_dir(row))
        evaluations = read_jsonl(run.eval_log)
        metrics = read_jsonl(run.metrics_file)
        speeds = [record["images_per_s"] for record in metrics if record.get("images_per_s") is not None]
        images_per_s = sum(speeds) / len(speeds) if speeds else None
        step = run.read_status().get("step") if run.status_file.is_file() else None
        with self.transaction() as db:
            db.execute("DELETE FROM evaluations WHERE run_id = ?", (run_id,))
            db.executemany(
                """INSERT OR REPLACE INTO evaluations
                (run_id, step, images_seen, train_flops, metric, value, categories, chance_level, samples, n_images)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (
                        run_id,
                        record["step"],
                        record.get("images_seen"),
                        record.get("train_flops"),
                        record["metric"],
                        record["value"],
                        json.dumps(record.get("categories", {})),
                        record.get("chance_level"),
                        json.dumps(record["samples"]) if "samples" in record else None,
                        record.get("n_images"),
                    )
                    for record in evaluations
                ],
            )
            db.execute(
                "UPDATE runs SET images_per_s = ?, step = COALESCE(?, step) WHERE run_id = ?",
                (images_per_s, step, run_id),
            )
        return len(evaluations)


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat = {}
        for key, child in value.items():
            flat.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def spec_change_message(study_dir: Path, old: dict | None, new: dict, missing: list[str]) -> str:
    """Why a spec may not run in this study: what changed besides added grid points."""
    changes = []
    if old is not None:
        old_base, new_base = _flatten(old.get("base", {}), "base"), _flatten(new.get("base", {}), "base")
        for key in sorted(set(old_base) | set(new_base)):
            if old_base.get(key) != new_base.get(key):
                changes.append(
                    f"{key} ({old_base.get(key, '(unset)')!r} -> {new_base.get(key, '(unset)')!r})"
                )
        old_grid, new_grid = old.get("grid", {}), new.get("grid", {})
        for axis in ("backbones", "dataset_sizes", "caption_policies", "seeds"):
            gone = [value for value in old_grid.get(axis) or [] if value not in (new_grid.get(axis) or [])]
            if gone and new_grid.get(axis) is not None:
                changes.append(f"grid.{axis} drops {', '.join(map(repr, gone))}")
            elif old_grid.get(axis) is not None and new_grid.get(axis) is None:
                changes.append(f"grid.{axis} removed")
    what = "; ".join(changes) if changes else f"the resolved configs of {len(missing)} existing run(s) differ"
    return (
        f"study {study_dir} was created with a different spec ({what}); a study may only add grid points "
        f"(first existing run not in the new spec: {missing[0]}). Use a new study folder for a changed recipe "
        "(--dir; --out for the demo)."
    )

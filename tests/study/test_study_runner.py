"""The study runner in-process: end to end through the CLI, skipping finished work, failures, claims, spec changes."""

import json
import socket
import time

import pytest
from study_fixtures import metric_steps, tiny_spec, write_spec_toml

from t2iscale.cli import main
from t2iscale.errors import UserError
from t2iscale.findings.curves import load_curves
from t2iscale.study.plan import load_spec
from t2iscale.study.registry import StudyRegistry
from t2iscale.study.results import load_runs, study_metrics
from t2iscale.study.runner import register_study, run_study
from t2iscale.train.loop import TrainingDiverged
from t2iscale.zoo import Setting, account

THREE = ["sdxl-c8-td1_1", "sdxl-c8-td1_2", "sdxl-c16-td1_1"]


def test_a_study_runs_end_to_end_through_the_cli_and_feeds_the_fits(tmp_path, capsys):
    spec_file = write_spec_toml(tmp_path / "study.toml", tiny_spec(backbones=THREE))
    study = tmp_path / "study"

    assert main(["study", "run", str(spec_file), "--dir", str(study), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "sdxl-c8-td1_1.n64.mix.s0-" in dry and "3 runs" in dry and not (study / "study.sqlite").exists()

    assert main(["study", "run", str(spec_file), "--dir", str(study), "--quiet"]) == 0
    assert "3 finished" in capsys.readouterr().out

    # status: every run finished at 4/4 with its last TIFA value
    assert main(["study", "status", str(study), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [row["status"] for row in status] == ["finished"] * 3
    assert all(row["step"] == row["total_steps"] == 4 and "tifa" in row["metrics"] for row in status)
    assert main(["study", "status", str(study)]) == 0
    assert "3 finished" in capsys.readouterr().out

    # results: runs in grid order with sizes from the zoo and D from the dataset; curves at steps 2 and 4
    runs = load_runs(study)
    assert [run.backbone for run in runs] == THREE
    setting = Setting(16, 1, 3, 16, 12)
    for run in runs:
        assert run.params == account(run.backbone, setting).params and run.family == "sdxl"
        assert run.status == "finished" and run.images_per_s > 0 and run.elapsed_s > 0
        assert run.config["model"]["backbone"] == run.backbone and run.run_dir.is_dir()
    from t2iscale.data.shapes import ShapesDataset

    noun_pairs = ShapesDataset("tiny", 0, 64, "mix", 16).noun_pairs_total()
    assert study_metrics(study) == ["tifa"]
    curves = load_curves(study, "tifa")
    assert [curve.run_id for curve in curves] == [run.run_id for run in runs]
    for curve, run in zip(curves, runs):
        assert curve.steps == (2, 4) and curve.images_seen == (16, 32)
        assert (curve.params, curve.gmacs, curve.dataset_noun_pairs) == (run.params, run.gmacs, noun_pairs)
        assert curve.label == run.backbone  # only the backbone varies in this study
        assert set(curve.category) == {
            "single_object",
            "two_object",
            "counting",
            "colors",
            "position",
            "color_attr",
        }
        assert all(len(values) == 2 for values in curve.category.values())
        eval_lines = (run.run_dir / "eval" / "eval.jsonl").read_text().splitlines()
        assert [json.loads(line)["value"] for line in eval_lines] == list(curve.values)
    assert load_curves(study, "clip") == []

    # the fits read the study database
    assert main(["fit", "--study", str(study), "--x", "params", "--no-frontier", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["axis"] == "params" and len(fit["points"]) == 3
    assert sorted(point["x"] for point in fit["points"]) == sorted(run.params for run in runs)

    # running the study again trains nothing: the run folders are untouched
    before = {run.run_id: (run.run_dir / "metrics.jsonl").read_bytes() for run in runs}
    report = run_study(spec_file, study, progress=False)
    assert [outcome.outcome for outcome in report.outcomes] == ["already finished"] * 3 and report.ok
    assert {run.run_id: (run.run_dir / "metrics.jsonl").read_bytes() for run in runs} == before
    with StudyRegistry(study) as registry:
        assert [row["attempts"] for row in registry.runs()] == [1, 1, 1]

    # sync re-imports the same results (idempotent) ...
    assert main(["study", "sync", str(study)]) == 0
    assert load_curves(study, "tifa") == curves
    # ... and repairs a database whose runner died after training finished but before recording it
    with StudyRegistry(study) as registry, registry.transaction() as db:
        db.execute("DELETE FROM evaluations")
    _set_claim(study, runs[0].run_id, f"{socket.gethostname()}:999999999", time.time())
    capsys.readouterr()
    assert main(["study", "sync", str(study)]) == 0
    assert "6 evaluation rows imported, 1 run(s) marked finished" in capsys.readouterr().out
    assert load_curves(study, "tifa") == curves and load_runs(study)[0].status == "finished"


def test_a_failing_run_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    import t2iscale.study.single_run as single_run

    real = single_run.run_training

    def diverge_the_small_one(config, progress=True):
        if config.model.backbone == "sdxl-c8-td1_1":
            raise TrainingDiverged("loss became non-finite (nan) by step 3")
        if config.model.backbone == "sdxl-c8-td1_2":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(config, progress)

    monkeypatch.setattr(single_run, "run_training", diverge_the_small_one)
    spec_file = write_spec_toml(
        tmp_path / "study.toml", tiny_spec(backbones=THREE, budget={"total_steps": 2})
    )
    study = tmp_path / "study"
    assert main(["study", "run", str(spec_file), "--dir", str(study), "--quiet"]) == 1
    out = capsys.readouterr()
    assert "1 finished" in out.out and "1 failed" in out.out and "1 diverged" in out.out
    runs = {run.backbone: run for run in load_runs(study)}
    assert [run.status for run in runs.values()] == ["diverged", "failed", "finished"]
    with StudyRegistry(study) as registry:
        errors = {row["backbone"]: row["error"] for row in registry.runs()}
    assert "non-finite" in errors["sdxl-c8-td1_1"] and "illegal memory access" in errors["sdxl-c8-td1_2"]
    assert "RuntimeError" in (runs["sdxl-c8-td1_2"].run_dir / "study_error.log").read_text()

    # Again with the real trainer: the failed run is retried, the diverged one is not (same seed, same end)
    monkeypatch.setattr(single_run, "run_training", real)
    report = run_study(spec_file, study, progress=False)
    assert [o.outcome for o in report.outcomes] == ["skipped diverged", "finished", "already finished"]
    assert not report.ok
    report = run_study(spec_file, study, progress=False, retry_diverged=True, only="sdxl-c8-td1_1.")
    assert [o.outcome for o in report.outcomes] == ["finished"] and report.ok


def _set_claim(study, run_id, owner, heartbeat_at):
    with StudyRegistry(study) as registry, registry.transaction() as db:
        db.execute(
            "UPDATE runs SET status = 'running', owner = ?, heartbeat_at = ?, claimed_at = ? WHERE run_id = ?",
            (owner, heartbeat_at, heartbeat_at, run_id),
        )


def test_stale_and_dead_claims_are_taken_over_and_live_ones_are_left_alone(tmp_path):
    spec = load_spec(tiny_spec(backbones=THREE, budget={"total_steps": 2}, eval={"every_steps": None}))
    study = tmp_path / "study"
    planned, added = register_study(spec, study)
    assert added == [run.run_id for run in planned]
    stale, dead, live = (run.run_id for run in planned)
    _set_claim(study, stale, "node-7:4242", time.time() - 3600)  # no heartbeat for an hour
    _set_claim(study, dead, f"{socket.gethostname()}:999999999", time.time())  # this host, no such process
    _set_claim(study, live, "node-9:1234", time.time())  # another host, heartbeat fresh

    report = run_study(spec, study, progress=False)
    outcomes = {o.run_id: o for o in report.outcomes}
    assert (
        outcomes[stale].outcome == "finished"
        and "took over (stale) from node-7:4242" in outcomes[stale].message
    )
    assert outcomes[dead].outcome == "finished" and "took over (dead)" in outcomes[dead].message
    assert outcomes[live].outcome == "running elsewhere" and "node-9:1234" in outcomes[live].message
    assert metric_steps(study / "runs" / stale) == [1, 2]
    assert not (study / "runs" / live / "metrics.jsonl").exists()
    with StudyRegistry(study) as registry:
        rows = {row["run_id"]: row for row in registry.runs()}
    assert rows[stale]["owner"].startswith(socket.gethostname()) and rows[live]["owner"] == "node-9:1234"


def test_adding_grid_points_adds_runs_and_changing_the_recipe_is_refused(tmp_path):
    study = tmp_path / "study"
    one = tiny_spec(backbones=["sdxl-c8-td1_1"], budget={"total_steps": 2}, eval={"every_steps": None})
    first = run_study(one, study, progress=False)
    assert [o.outcome for o in first.outcomes] == ["finished"]
    steps_before = (study / "runs" / first.outcomes[0].run_id / "metrics.jsonl").read_bytes()

    two = json.loads(json.dumps(one))
    two["grid"]["backbones"].append("sdxl-c16-td1_1")
    two["executor"] = {"kind": "local", "heartbeat_s": 5}  # how runs execute is not part of the results
    second = run_study(two, study, progress=False)
    assert [o.outcome for o in second.outcomes] == ["already finished", "finished"]
    assert len(second.added) == 1 and second.added[0].startswith("sdxl-c16-td1_1.")
    assert (study / "runs" / first.outcomes[0].run_id / "metrics.jsonl").read_bytes() == steps_before
    assert json.loads((study / "study.json").read_text())["grid"]["backbones"] == two["grid"]["backbones"]

    changed = json.loads(json.dumps(two))
    changed["base"]["recipe"]["lr"] = 5e-4
    with pytest.raises(UserError, match=r"different spec \(base\.recipe\.lr \(0\.001 -> 0\.0005\)\)"):
        run_study(changed, study, progress=False)
    from t2iscale.study.plan import load_spec
    from t2iscale.study.runner import dry_run_rows

    with pytest.raises(UserError, match=r"different spec \(base\.recipe\.lr"):  # --dry-run says so too
        dry_run_rows(load_spec(changed), study)
    fewer = json.loads(json.dumps(two))
    fewer["grid"]["backbones"] = ["sdxl-c16-td1_1"]
    with pytest.raises(UserError, match=r"grid\.backbones drops 'sdxl-c8-td1_1'"):
        run_study(fewer, study, progress=False)
    with StudyRegistry(study) as registry:
        assert len(registry.runs()) == 2  # the refused specs added nothing


def test_a_study_rerun_with_other_speed_settings_keeps_its_finished_runs(tmp_path):
    study = tmp_path / "study"
    spec = tiny_spec(backbones=["sdxl-c8-td1_1"], budget={"total_steps": 2}, eval={"every_steps": None})
    first = run_study(spec, study, progress=False)
    faster = json.loads(json.dumps(spec))
    faster["base"].setdefault("data", {})["prefetch_batches"] = 3
    faster["base"]["recipe"]["channels_last"] = True
    second = run_study(faster, study, progress=False)
    assert [o.run_id for o in second.outcomes] == [o.run_id for o in first.outcomes]
    assert [o.outcome for o in second.outcomes] == ["already finished"]
    with StudyRegistry(study) as registry:
        (row,) = registry.runs()
    stored = json.loads(row["config"])  # what a later attempt of the run would use
    assert stored["data"]["prefetch_batches"] == 3 and stored["recipe"]["channels_last"] is True


def test_reading_a_folder_that_is_not_a_study_names_it(tmp_path):
    for read in (load_runs, load_curves, study_metrics):
        with pytest.raises(UserError, match=f"{tmp_path} is not a study folder"):
            read(tmp_path)
    assert main(["study", "status", str(tmp_path / "nowhere")]) == 1
    (tmp_path / "study.sqlite").write_bytes(b"")  # the database itself given for its folder
    with pytest.raises(UserError, match="is the study's database; pass the folder that holds it"):
        load_runs(tmp_path / "study.sqlite")


def test_importing_results_is_idempotent_and_a_non_finite_value_is_no_point(tmp_path):
    (planned,), _ = register_study(load_spec(tiny_spec(backbones=["sdxl-c8-td1_1"])), tmp_path / "study")
    run_dir = tmp_path / "study" / "runs" / planned.run_id
    assert json.loads((run_dir / "config.json").read_text())["run_dir"] == str(run_dir.absolute())
    (run_dir / "eval").mkdir()
    records = [
        {
            "step": 2,
            "images_seen": 16,
            "train_flops": 1e9,
            "metric": "tifa",
            "value": 0.5,
            "categories": {"colors": 0.25},
        },
        {
            "step": 4,
            "images_seen": 32,
            "train_flops": 2e9,
            "metric": "tifa",
            "value": float("nan"),
            "categories": {},
        },
        {
            "step": 4,
            "images_seen": 32,
            "train_flops": 2e9,
            "metric": "oracle_fid",
            "value": 12.5,
            "categories": {},
        },
    ]
    (run_dir / "eval" / "eval.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    for _ in range(2):
        assert main(["study", "sync", str(tmp_path / "study")]) == 0
        with StudyRegistry(tmp_path / "study") as registry:
            assert len(registry.evaluations()) == 3
    assert study_metrics(tmp_path / "study") == ["oracle_fid", "tifa"]
    (tifa,) = load_curves(tmp_path / "study", "tifa")
    assert (tifa.steps, tifa.values, tifa.category) == ((2,), (0.5,), {"colors": (0.25,)})
    (fid,) = load_curves(tmp_path / "study", "oracle_fid")
    assert (fid.steps, fid.values, fid.dataset_noun_pairs > 0) == ((4,), (12.5,), True)


def test_a_slurm_job_stopped_for_requeue_frees_its_claim_for_the_requeued_job(tmp_path, monkeypatch):
    from t2iscale.study.executors import StudyJob
    from t2iscale.study.ownership import owner_id

    spec = load_spec(tiny_spec(backbones=["sdxl-c8-td1_1"], executor={"kind": "slurm", "cluster": "local"}))
    (planned,), _ = register_study(spec, tmp_path / "study")
    with StudyRegistry(tmp_path / "study") as registry:
        assert registry.claim(planned.run_id, owner_id(), stale_after_s=600).claimed
    # What submitit does on timeout or preemption: call the job's checkpoint() inside the job, then requeue it.
    for key, value in {
        "SUBMITIT_EXECUTOR": "local",
        "SUBMITIT_LOCAL_JOB_ID": "7",
        "SUBMITIT_LOCAL_GLOBALID": "0",
    }.items():
        monkeypatch.setenv(key, value)
    job = StudyJob(str(tmp_path / "study"), planned.run_id, spec.executor.model_dump(mode="json"))
    resubmission = job.checkpoint()
    assert resubmission.function is job
    row = load_runs(tmp_path / "study")[0]
    assert row.status == "queued"
    with StudyRegistry(tmp_path / "study") as registry:
        claim = registry.claim(planned.run_id, "node-2:77", stale_after_s=600)  # the requeued job, elsewhere
    assert claim.claimed and claim.reason == "new"

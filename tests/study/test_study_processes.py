"""Studies across processes: a killed runner resumes, two runners share the work, subprocess and submitit executors."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from study_fixtures import cli_env, metric_steps, study_command, tiny_spec, wait_for, write_spec_toml

from t2iscale.findings.curves import load_curves
from t2iscale.study.registry import StudyRegistry
from t2iscale.study.runner import run_study
from t2iscale.study.status import status_rows


def _rows(study):
    with StudyRegistry(study) as registry:
        return registry.runs(), registry.evaluations()


def test_a_killed_study_resumes_and_ends_with_every_result_once(tmp_path):
    # Evaluation at the end only, so the kill (at the first checkpoint) never falls between a checkpoint and its
    # evaluation.
    spec = tiny_spec(budget={"total_steps": 8, "checkpoint_every_steps": 2}, eval={"every_steps": 8})
    spec_file = write_spec_toml(tmp_path / "study.toml", spec)
    study = tmp_path / "study"
    process = subprocess.Popen(
        study_command("run", str(spec_file), "--dir", str(study), "--quiet"),
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    runs_dir = study / "runs"
    wait_for(runs_dir, process)
    first = sorted(runs_dir.iterdir())  # run folders exist once the study is registered
    first_run = next(path for path in first if path.name.startswith("sdxl-c8-td1_1."))
    wait_for(first_run / "checkpoints" / "step_000002" / "trainer_state.json", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    rows, _ = _rows(study)
    assert rows[0]["status"] == "running" and not (first_run / "final").exists()
    status = status_rows(study)[0]  # the claim of a dead runner, and how far its run got
    assert status["status"] == "running? (dead claim)" and 2 <= status["step"] < 8

    report = run_study(spec_file, study, progress=False)
    assert [o.outcome for o in report.outcomes] == ["finished", "finished"]
    assert "took over (dead)" in report.outcomes[0].message
    rows, evaluations = _rows(study)
    assert [row["status"] for row in rows] == ["finished", "finished"]
    assert rows[0]["attempts"] == 2 and rows[1]["attempts"] == 1
    for row in rows:
        assert metric_steps(study / row["run_dir"]) == list(range(1, 9))  # resumed, every step logged once
    assert sorted((e["run_id"], e["step"], e["metric"]) for e in evaluations) == sorted(
        (row["run_id"], 8, "tifa") for row in rows
    )


def test_two_runners_on_one_study_never_train_the_same_run_twice(tmp_path):
    spec_file = write_spec_toml(tmp_path / "study.toml", tiny_spec(eval={"every_steps": None}))
    study = tmp_path / "study"
    command = study_command("run", str(spec_file), "--dir", str(study), "--quiet")
    runners = [subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [runner.communicate(timeout=300)[0] for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0], outputs
    rows, _ = _rows(study)
    assert [row["status"] for row in rows] == ["finished", "finished"]
    assert [row["attempts"] for row in rows] == [1, 1]  # each run claimed exactly once
    pids = {str(runner.pid) for runner in runners}
    assert {row["owner"].rsplit(":", 1)[1] for row in rows} <= pids
    for row in rows:
        assert metric_steps(study / row["run_dir"]) == [1, 2, 3, 4]  # trained once, each step logged once
    # The two summaries ("study DIR: 1 finished, 1 running elsewhere") add up to the two runs.
    assert sum(int(n) for output in outputs for n in re.findall(r"(\d+) finished", output)) == 2


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in command and state != "Z":
                pids.append(int(entry.name))
    return pids


def test_the_subprocess_executor_trains_through_a_launcher_and_its_trainers_die_with_the_runner(tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    spec = tiny_spec(
        backbones=["sdxl-c8-td1_1"],
        executor={"kind": "subprocess", "launcher": launcher},
        budget={"total_steps": 30, "checkpoint_every_steps": 2},
        eval={"every_steps": 30},
    )
    spec_file = write_spec_toml(tmp_path / "study.toml", spec)
    study = tmp_path / "study"
    runner = subprocess.Popen(
        study_command("run", str(spec_file), "--dir", str(study), "--quiet"),
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(study / "runs", runner)
    (run_dir,) = (study / "runs").iterdir()
    wait_for(run_dir / "checkpoints" / "step_000002" / "trainer_state.json", runner)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    # The launcher and both of its workers stop with the runner: nobody trains the run behind the database's back.
    deadline = time.time() + 60
    while _processes_mentioning(str(run_dir)) and time.time() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(str(run_dir)) == []
    # They stopped mid-run (orphans would have trained on to the end and saved final weights).
    assert not (run_dir / "final").exists() and json.loads((run_dir / "status.json").read_text())["step"] < 30

    report = run_study(spec_file, study, progress=False)
    assert [o.outcome for o in report.outcomes] == ["finished"], report.outcomes
    rows, evaluations = _rows(study)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["processes"] == 2 and [m["step"] for m in metrics] == list(range(1, 31))
    assert (run_dir / "train.log").read_text().count("torch.distributed.run") == 2  # two attempts
    assert [(e["step"], e["metric"]) for e in evaluations] == [(30, "tifa")]
    assert rows[0]["attempts"] == 2 and rows[0]["images_per_s"] > 0


def test_the_submitit_local_executor_runs_a_study_whose_job_records_its_own_result(tmp_path):
    executor = {"kind": "slurm", "cluster": "local", "timeout_min": 10}
    spec = tiny_spec(backbones=["sdxl-c8-td1_1"], executor=executor)
    study = tmp_path / "study"
    report = run_study(spec, study, progress=False)
    assert [o.outcome for o in report.outcomes] == ["finished"], report.outcomes
    rows, _ = _rows(study)
    assert rows[0]["status"] == "finished" and rows[0]["job_id"]
    assert rows[0]["owner"].rsplit(":", 1)[1] != str(__import__("os").getpid())  # the job claimed it itself
    curves = load_curves(study)
    assert len(curves) == 1 and curves[0].steps == (2, 4)
    assert any(path.name.endswith("_result.pkl") for path in (study / "slurm").iterdir())
    # Submitting again finds the run finished and submits nothing.
    again = run_study(spec, study, progress=False)
    assert [o.outcome for o in again.outcomes] == ["already finished"]

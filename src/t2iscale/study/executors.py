"""Where a study's runs execute: in this process, in one `t2iscale train` process each, or as Slurm jobs.

Every executor trains a run through `t2iscale.study.single_run.run_training` (directly or via `t2iscale train`),
and every attempt goes through `t2iscale.study.attempt.attempt_run`, which claims the run in the database first.
So any mix of runners (two terminals, a laptop and a cluster) trains each run once.

- local:      sequential, in-process; what the demo and the tests use.
- subprocess: sequential, one `t2iscale train --config <run>/config.json` per run, optionally behind a launcher
              (`torchrun --nproc_per_node=8`, `accelerate launch ...`), so one run can span several processes.
- slurm:      one submitit job per run (a job array); the job claims its run, trains it on its tasks (one rank per
              GPU, torch.distributed environment exported by submitit) and records the result itself, so the
              submitting process may exit. A job that times out or is preempted is requeued and resumes from the
              run folder's last checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.progress import progress_bar
from t2iscale.study.attempt import RunDiverged, RunOutcome, attempt_run
from t2iscale.study.ownership import claim_is_abandoned, owner_id
from t2iscale.study.registry import StudyRegistry
from t2iscale.study.spec import LocalExecutorSpec, SlurmExecutorSpec, SubprocessExecutorSpec
from t2iscale.train.config import TrainConfig
from t2iscale.train.run_dir import RunDir

TRAIN_LOG = "train.log"
SLURM_FOLDER = "slurm"


def _in_process_trainer(progress: bool):
    def train_in_process(config: TrainConfig) -> None:
        from t2iscale.study.single_run import run_training

        run_training(config, progress=progress)

    return train_in_process


def _sequential(study_dir, run_ids, spec, trainer, progress, retry_diverged) -> list[RunOutcome]:
    outcomes = []
    bar = progress_bar(run_ids, desc="study", unit="run", enabled=progress)
    for run_id in bar:
        bar.set_postfix_str(run_id)
        outcome = attempt_run(
            study_dir,
            run_id,
            trainer,
            heartbeat_s=spec.heartbeat_s,
            stale_after_s=spec.stale_after_min * 60,
            retry_diverged=retry_diverged,
        )
        outcomes.append(outcome)
        if outcome.outcome in ("failed", "diverged"):
            bar.write(f"t2iscale study: run {run_id} {outcome.outcome}: {outcome.message}", file=sys.stderr)
    bar.close()
    return outcomes


class LocalExecutor:
    def __init__(self, spec: LocalExecutorSpec):
        self.spec = spec

    def execute(
        self, study_dir: Path, run_ids: list[str], *, progress=True, retry_diverged=False, resubmit=False
    ):
        return _sequential(
            study_dir, run_ids, self.spec, _in_process_trainer(progress), progress, retry_diverged
        )


def _die_with_this_process():
    """A `preexec_fn` that makes the child get SIGTERM when this process dies, even by SIGKILL (Linux prctl).

    The claim of a run dies with its runner, so another runner may take the run over; a trainer left running
    would then train it twice. A launcher such as torchrun stops its workers on SIGTERM. Elsewhere: None.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not between fork and exec
    parent = os.getpid()
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG

    def preexec() -> None:
        libc.prctl(set_parent_death_signal, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before the prctl took effect
            os._exit(1)

    return preexec


class SubprocessTrainer:
    """Trains a run with `[launcher...] -m t2iscale.cli train --config <run>/config.json`; output in train.log."""

    def __init__(self, launcher: list[str], env: dict[str, str]):
        self.launcher = launcher
        self.env = env

    def command(self, config_file: Path) -> list[str]:
        start = list(self.launcher) if self.launcher else [sys.executable]
        return [*start, "-m", "t2iscale.cli", "train", "--config", str(config_file), "--quiet"]

    def __call__(self, config: TrainConfig) -> None:
        run = RunDir(config.run_dir)
        command = self.command(run.config_file)
        log_file = run.path / TRAIN_LOG
        with log_file.open("a") as log:
            log.write(f"$ {shlex.join(command)}\n")
            log.flush()
            completed = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                preexec_fn=_die_with_this_process(),
            )
        if completed.returncode == 0:
            return
        status = run.read_status()
        if status.get("status") == "diverged":
            raise RunDiverged(status.get("message", "loss became non-finite"))
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        last = (errors or lines or ["(no output)"])[-1].strip()
        raise UserError(
            f"`{shlex.join(command)}` exited with status {completed.returncode}: {last} (log: {log_file})"
        )


class SubprocessExecutor:
    def __init__(self, spec: SubprocessExecutorSpec):
        self.spec = spec

    def execute(
        self, study_dir: Path, run_ids: list[str], *, progress=True, retry_diverged=False, resubmit=False
    ):
        trainer = SubprocessTrainer(self.spec.launcher, self.spec.env)
        return _sequential(study_dir, run_ids, self.spec, trainer, progress, retry_diverged)


# -- Slurm through submitit ------------------------------------------------------------------------------------


def _slurm_folder(study_dir: Path, spec: SlurmExecutorSpec) -> Path:
    return Path(spec.folder).absolute() if spec.folder else (Path(study_dir) / SLURM_FOLDER).absolute()


def submitit_executor(study_dir: Path, spec: SlurmExecutorSpec, job_name: str = "t2iscale"):
    """A submitit AutoExecutor configured from the study's [executor] table (cluster slurm, local or debug)."""
    import submitit

    cluster = spec.cluster
    extra = {f"{cluster}_max_num_timeout": spec.max_requeues} if cluster in ("slurm", "local") else {}
    try:
        executor = submitit.AutoExecutor(folder=_slurm_folder(study_dir, spec), cluster=cluster, **extra)
    except RuntimeError as error:  # no srun on this machine
        raise UserError(
            f"executor.cluster {cluster!r}: {error} Submit from a Slurm login node, or set executor.cluster = "
            "'local' to run the same jobs on this machine"
        ) from None
    parameters = {
        "name": job_name,
        "timeout_min": spec.timeout_min,
        "nodes": spec.nodes,
        "tasks_per_node": spec.processes_per_node,
        "gpus_per_node": spec.gpus_per_node or None,
        "cpus_per_task": spec.cpus_per_task,
        "mem_gb": spec.mem_gb,
        "slurm_partition": spec.partition,
        "slurm_account": spec.account,
        "slurm_qos": spec.qos,
        "slurm_constraint": spec.constraint,
        "slurm_array_parallelism": spec.array_parallelism,
        "slurm_setup": spec.setup or None,
        "slurm_additional_parameters": dict(spec.additional) or None,
        "local_setup": spec.setup or None,
    }
    executor.update_parameters(**{key: value for key, value in parameters.items() if value is not None})
    return executor


class StudyJob:
    """The callable a Slurm job runs: one attempt at one run, on every task of the job.

    Task 0 claims the run and records the result; it tells the other tasks whether to train through a small file
    (they must all join the same torch.distributed group, or none may). Requeue on timeout or preemption
    (`checkpoint`) releases the claim, so the requeued job can claim the run again at once.
    """

    def __init__(self, study_dir: str, run_id: str, spec_json: dict, retry_diverged: bool = False):
        self.study_dir = str(study_dir)
        self.run_id = run_id
        self.spec_json = spec_json
        self.retry_diverged = retry_diverged

    @property
    def spec(self) -> SlurmExecutorSpec:
        return SlurmExecutorSpec.model_validate(self.spec_json)

    def _decision_file(self, job_id: str) -> Path:
        attempt = os.environ.get("SLURM_RESTART_COUNT", "0")
        return _slurm_folder(Path(self.study_dir), self.spec) / "claims" / f"{job_id}.{attempt}.json"

    def __call__(self) -> RunOutcome:
        import submitit

        environment = submitit.JobEnvironment()
        spec = self.spec
        if environment.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(
                set_cuda_visible_devices=spec.gpus_per_node > 0, overwrite=True
            )
        decision = self._decision_file(environment.job_id)
        trainer = _in_process_trainer(progress=False)
        if environment.global_rank != 0:
            return self._follow(decision, trainer)

        def tell_other_tasks(claimed: bool) -> None:
            if environment.num_tasks == 1:
                return
            decision.parent.mkdir(parents=True, exist_ok=True)
            tmp = decision.with_suffix(".tmp")
            tmp.write_text(json.dumps({"train": claimed}))
            os.replace(tmp, decision)

        return attempt_run(
            self.study_dir,
            self.run_id,
            trainer,
            heartbeat_s=spec.heartbeat_s,
            stale_after_s=spec.stale_after_min * 60,
            retry_diverged=self.retry_diverged,
            on_claim=tell_other_tasks,
        )

    def _follow(self, decision: Path, trainer) -> RunOutcome:
        deadline = time.time() + self.spec.stale_after_min * 60
        while not decision.is_file():
            if time.time() > deadline:
                raise RuntimeError(f"task 0 of this job never decided whether to train (no {decision})")
            time.sleep(1.0)
        if not json.loads(decision.read_text())["train"]:
            return RunOutcome(self.run_id, "running elsewhere", "task 0 did not get the claim")
        with StudyRegistry(self.study_dir) as registry:
            config = json.loads(registry.run(self.run_id)["config"])
            run_dir = registry.run_dir(registry.run(self.run_id)).absolute()
        trainer(TrainConfig.model_validate({**config, "run_dir": str(run_dir)}))
        return RunOutcome(self.run_id, "finished", "(task > 0)")

    def checkpoint(self, *args, **kwargs):
        """submitit calls this on timeout or preemption, before requeueing the job: free the claim."""
        import submitit

        if submitit.JobEnvironment().global_rank != 0:  # task 0 holds the claim
            return submitit.helpers.DelayedSubmission(self, *args, **kwargs)
        try:
            with StudyRegistry(self.study_dir) as registry:
                registry.import_results(self.run_id)
                registry.release(self.run_id, owner_id(), "queued", "requeued (timeout or preemption)")
        except Exception as error:  # requeue anyway; the claim then goes stale and is taken over
            print(f"t2iscale study: could not release {self.run_id}: {error}", flush=True)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class SlurmExecutor:
    def __init__(self, spec: SlurmExecutorSpec):
        self.spec = spec

    def _to_submit(self, registry, run_ids, retry_diverged, resubmit) -> tuple[list[str], list[RunOutcome]]:
        rows = {row["run_id"]: row for row in registry.runs()}
        submit, outcomes = [], []
        for run_id in run_ids:
            row = rows[run_id]
            status = row["status"]
            if status == "finished":
                outcomes.append(RunOutcome(run_id, "already finished"))
            elif status == "diverged" and not retry_diverged:
                outcomes.append(RunOutcome(run_id, "skipped diverged", row["error"] or ""))
            elif status == "running" and not claim_is_abandoned(
                row["owner"], row["heartbeat_at"], self.spec.stale_after_min * 60
            ):
                outcomes.append(RunOutcome(run_id, "running elsewhere", row["owner"] or ""))
            elif status == "queued" and not resubmit:
                outcomes.append(
                    RunOutcome(
                        run_id,
                        "queued",
                        f"job {row['job_id']} (submitted earlier; --resubmit sends it again)",
                    )
                )
            else:
                submit.append(run_id)
        return submit, outcomes

    def execute(
        self, study_dir: Path, run_ids: list[str], *, progress=True, retry_diverged=False, resubmit=False
    ):
        study_dir = Path(study_dir).absolute()
        with StudyRegistry(study_dir) as registry:
            submit, outcomes = self._to_submit(registry, run_ids, retry_diverged, resubmit)
            if not submit:
                return outcomes
            executor = submitit_executor(study_dir, self.spec, job_name=f"t2iscale-{study_dir.name}")
            spec_json = self.spec.model_dump(mode="json")
            # Queued before submitting: a fast job may claim (and finish) its run before submit() returns.
            for run_id in submit:
                registry.mark_queued(run_id, None)
            try:
                with executor.batch():
                    jobs = [
                        executor.submit(StudyJob(str(study_dir), run_id, spec_json, retry_diverged))
                        for run_id in submit
                    ]
            except Exception as error:
                for run_id in submit:
                    registry.release_queued(run_id, f"submission failed: {error}")
                raise UserError(f"submitting {len(submit)} job(s) with submitit failed: {error}") from None
            for run_id, job in zip(submit, jobs):
                registry.set_job_id(run_id, str(job.job_id))
        if not self.spec.wait:
            return outcomes + [RunOutcome(r, "queued", f"job {j.job_id}") for r, j in zip(submit, jobs)]
        return outcomes + self._wait(study_dir, submit, jobs, progress)

    def _wait(self, study_dir: Path, run_ids: list[str], jobs, progress: bool) -> list[RunOutcome]:
        import submitit

        by_job = {id(job): run_id for run_id, job in zip(run_ids, jobs)}
        outcomes = []
        bar = progress_bar(total=len(jobs), desc="study jobs", unit="run", enabled=progress)
        # sacct is a shared service: poll a real cluster gently, a local one quickly.
        poll_s = 30.0 if self.spec.cluster == "slurm" else 0.5
        for job in submitit.helpers.as_completed(jobs, poll_frequency=poll_s):
            run_id = by_job[id(job)]
            try:
                outcome = job.results()[0]  # one result per task; task 0 holds the record
            except Exception as error:  # the job itself died (node failure, out of memory, killed)
                message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                with StudyRegistry(study_dir) as registry:
                    registry.release_queued(run_id, f"job {job.job_id} failed: {message}")
                outcome = RunOutcome(
                    run_id, "failed", f"job {job.job_id}: {message} (logs: {job.paths.folder})"
                )
            outcomes.append(outcome)
            bar.update(1)
        bar.close()
        return outcomes


def make_executor(spec) -> LocalExecutor | SubprocessExecutor | SlurmExecutor:
    return {"local": LocalExecutor, "subprocess": SubprocessExecutor, "slurm": SlurmExecutor}[spec.kind](spec)

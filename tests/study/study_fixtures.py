"""Tiny study specs for the tests: a 16 px shapes world, 0.1-0.4M-parameter UNets, a few steps, a tiny evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

TINY_BASE = {
    "data": {"size": 64, "resolution": 16, "world": "tiny"},
    "text": {"dim": 16, "max_length": 12, "layers": 1, "heads": 2},
    "recipe": {"global_batch": 8, "warmup_steps": 2, "lr": 1e-3, "ema_decay": 0.99},
    "budget": {"total_steps": 4, "log_every_steps": 1, "checkpoint_every_steps": 2},
    "eval": {"every_steps": 2, "per_category": 1, "sampler_steps": 2},
}
BACKBONES = ["sdxl-c8-td1_1", "sdxl-c16-td1_1"]


def tiny_spec(backbones=BACKBONES, executor: dict | None = None, **sections) -> dict:
    base = {section: dict(values) for section, values in TINY_BASE.items()}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    spec = {"name": "tiny", "base": base, "grid": {"backbones": list(backbones)}}
    if executor is not None:
        spec["executor"] = executor
    return spec


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)  # strings, numbers, booleans and lists of them are the same in TOML


def write_spec_toml(path: Path, spec: dict) -> Path:
    """A spec dict as a TOML study file (tables for base sections, grid and executor); TOML has no null, so a
    None value is left out (its key then takes its default, None for the optional keys used here)."""
    lines = [f"{key} = {toml_value(value)}" for key, value in spec.items() if not isinstance(value, dict)]
    for section, values in spec["base"].items():
        lines.append(f"\n[base.{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
    for table in ("grid", "executor"):
        if table in spec:
            lines.append(f"\n[{table}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in spec[table].items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    return env


def run_t2iscale(*arguments: str, timeout: float = 120) -> tuple[int, str, str]:
    """`t2iscale ARGUMENTS` in a fresh process: (exit status, stdout, stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "t2iscale.cli", *arguments],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
    )
    return result.returncode, result.stdout, result.stderr


def study_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "t2iscale.cli", "study", *arguments]


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the study exited before {path} appeared: {process.stderr.read()}")
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def metric_steps(run_dir: Path) -> list[int]:
    from t2iscale.train.jsonl import read_jsonl

    return [record["step"] for record in read_jsonl(run_dir / "metrics.jsonl")]

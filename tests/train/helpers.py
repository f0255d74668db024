"""Tiny, fast training configs for the tests (16 px shapes world, a 0.1M-parameter UNet)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

TINY = {
    "model": {"backbone": "sdxl-c8-td1_1"},
    "data": {"size": 64, "resolution": 16, "world": "tiny"},
    "text": {"dim": 16, "max_length": 12, "layers": 1, "heads": 2},
    "recipe": {"global_batch": 8, "warmup_steps": 2, "lr": 1e-3, "ema_decay": 0.99},
    "budget": {"total_steps": 6, "log_every_steps": 1, "checkpoint_every_steps": 2},
}


def tiny_config(run_dir: Path, **sections) -> dict:
    config = {section: dict(values) for section, values in TINY.items()}
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    config["run_dir"] = str(run_dir)
    return config


def overrides(config: dict) -> list[str]:
    """A config dict as `--set key=value` arguments."""
    import json

    arguments = []
    for section, values in config.items():
        if isinstance(values, dict):
            arguments += [f"--set={section}.{key}={json.dumps(value)}" for key, value in values.items()]
        else:
            arguments.append(f"--set={section}={values}")
    return arguments


def cli_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    return env


def train_command(config: dict) -> list[str]:
    return [sys.executable, "-m", "t2iscale.cli", "train", "--quiet", *overrides(config)]


def run_cli(arguments: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(arguments, env=cli_env(), capture_output=True, text=True, timeout=300, **kwargs)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    weights = load_file(run_dir / "final" / "backbone" / "diffusion_pytorch_model.safetensors")
    weights.update(
        {
            f"text.{k}": v
            for k, v in load_file(run_dir / "final" / "text_encoder" / "model.safetensors").items()
        }
    )
    return weights

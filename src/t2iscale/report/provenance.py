"""Provenance: what produced the numbers on the page, so a reader can reproduce or distrust them.

The study spec (as the registry stored it), the commands (the study's when a driver recorded it in
summary.json, and the report's own), the t2iscale version and git commit of the code that built the report,
library versions, the machine that built it and the device the runs trained on (from each run's status), and
wall-clock times (from the registry). None of it needs a network.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

from t2iscale.report import fmt, html
from t2iscale.report.analyses import Analyses
from t2iscale.report.build import ReportOptions

LIBRARIES = ("numpy", "scipy", "matplotlib", "pillow", "torch", "diffusers", "accelerate", "pydantic")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return fmt.MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))


def git_commit(path: Path | None = None) -> str:
    """The commit of the checkout the t2iscale package was loaded from ('+ uncommitted changes' when the tracked
    files differ), or why it is unknown."""
    source = path or Path(__file__).resolve().parent
    if shutil.which("git") is None:
        return "unknown (git is not installed)"
    try:
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown (t2iscale was not loaded from a git checkout)"
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    changes = " + uncommitted changes" if dirty.returncode == 0 and dirty.stdout.strip() else ""
    return head.stdout.strip() + changes


def library_versions() -> list[str]:
    found = [f"python {platform.python_version()}"]
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_models() -> str:
    if shutil.which("nvidia-smi") is None:
        return "none found (no nvidia-smi)"
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    names = [line.split("(")[0].strip() for line in listed.stdout.splitlines() if line.strip()]
    return "; ".join(names) or "none found"


def machine_text() -> str:
    return (
        f"{platform.system()} {platform.release()} ({platform.machine()}), CPU {cpu_model()}, "
        f"{os.cpu_count()} logical cores, GPU: {gpu_models()}"
    )


def training_devices(analyses: Analyses) -> list[str]:
    """What each run's status says it measured MFU against (it names the device), grouped by text."""
    by_text: dict[str, int] = {}
    for run in analyses.data.runs:
        log = analyses.data.logs.get(run.run_id)
        message = "" if log is None else log.status_message
        if message:
            by_text[message] = by_text.get(message, 0) + 1
    return [f"{text} ({n} run{'s' if n > 1 else ''})" for text, n in by_text.items()]


def wall_clock(analyses: Analyses) -> list[str]:
    data = analyses.data
    starts = [start for start, _ in data.run_times.values() if start]
    ends = [end for _, end in data.run_times.values() if end]
    lines = [f"study registered {_when(data.created_at)}"]
    if starts:
        lines.append(f"first run started {_when(min(starts))}")
    if ends:
        lines.append(f"last run finished {_when(max(ends))}")
    begin = data.created_at or (min(starts) if starts else None)
    if begin and ends:
        lines.append(f"from registration to the last finished run: {fmt.duration(max(ends) - begin)}")
    elapsed = [run.elapsed_s for run in data.runs if run.elapsed_s]
    if elapsed:
        lines.append(f"training time summed over runs: {fmt.duration(sum(elapsed))} ({len(elapsed)} runs)")
    summary = data.summary or {}
    if isinstance(summary.get("elapsed_s"), int | float):
        lines.append(
            f"the driver's own start-to-summary time (summary.json): {fmt.duration(summary['elapsed_s'])}"
        )
    return lines


def provenance_section(analyses: Analyses, options: ReportOptions) -> html.Section:
    data = analyses.data
    from t2iscale import __version__

    summary = data.summary or {}
    study_command = summary.get("command")
    commands = [
        html.join(
            "the study: ",
            html.code(str(study_command))
            if study_command
            else "not recorded (the study database keeps the spec below, not the command line that ran it)",
        ),
        html.join("this report: ", html.code(options.command) if options.command else "built from Python"),
    ]
    devices = training_devices(analyses)
    facts = [
        html.join(html.strong("Study folder: "), html.code(str(data.study_dir.resolve()))),
        html.join(html.strong("Commands: "), html.items(commands)),
        html.join(
            html.strong("t2iscale: "),
            f"version {__version__}, commit {git_commit()} (the code that built "
            "this report; the runs record no commit of their own)",
        ),
        html.join(html.strong("Libraries: "), ", ".join(library_versions()) + "."),
        html.join(html.strong("Machine that built this report: "), machine_text() + "."),
        html.join(
            html.strong("Training device (each run's status): "),
            "; ".join(devices) + "." if devices else "not recorded.",
        ),
        html.join(html.strong("Wall-clock: "), html.items(wall_clock(analyses))),
        html.join(html.strong("Report built: "), time.strftime("%Y-%m-%d %H:%M:%S %Z") + "."),
    ]
    body = html.items(facts)
    spec = data.spec
    if spec is not None:
        body += html.details(
            "The study spec, as the study database stores it", html.preformatted(json.dumps(spec, indent=2))
        )
    else:
        body += html.note("The study database holds no spec.")
    if summary:
        body += html.details(
            "summary.json (written by the study's driver)", html.preformatted(json.dumps(summary, indent=2))
        )
    return html.Section("provenance", "Provenance", body)

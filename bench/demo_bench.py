"""Wall time of ``emkit demo``, cold and warm, each run as a separate process (as a user runs it).

Cold: a fresh, empty ``EMKIT_CACHE`` and a fresh run dir, so the one-off conversion of the embedded
model (and everything the demo builds) is included. Warm: the very same command again, same cache
and same run dir — what a user pays for a second ``make demo`` (finished stages are skipped).
The demo runs in a fresh working directory too, so a default run dir relative to the current
directory is fresh as well even when the verb offers no option to choose it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import say, stopwatch

RUN_DIR_OPTIONS = ("--run-dir", "--out", "--output", "--dir")


def emkit_command() -> list[str]:
    """The ``emkit`` script next to this interpreter, else ``python -m emkit.cli``."""
    script = Path(sys.executable).with_name("emkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "emkit.cli"]


def run_dir_option(help_text: str) -> str | None:
    """The option of ``emkit demo`` that names its run dir, if its --help offers one."""
    for option in RUN_DIR_OPTIONS:
        if re.search(rf"(^|[\s,]){re.escape(option)}\b", help_text):
            return option
    return None


def _run(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> dict[str, Any]:
    with stopwatch() as clock:
        done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    # The demo ends with its one results table (a row per comparison, group and score), then the paths.
    tail = (done.stdout + done.stderr).strip().splitlines()[-24:]
    return {"seconds": clock["s"], "returncode": done.returncode, "output_tail": tail}


def bench_demo(*, timeout: float = 3600.0) -> dict[str, Any]:
    base = emkit_command()
    help_text = subprocess.run([*base, "demo", "--help"], capture_output=True, text=True, timeout=120).stdout
    option = run_dir_option(help_text)
    tmp = Path(tempfile.mkdtemp(prefix="emkit-demo-bench-"))
    try:
        cache, work, run_dir = tmp / "cache", tmp / "work", tmp / "run"
        work.mkdir()
        env = {**os.environ, "EMKIT_CACHE": str(cache)}
        # No judge calls: an API key in the environment would make the time depend on a remote service.
        no_judge = ["--no-judge"] if re.search(r"--no-judge\b", help_text) else []
        command = [*base, "demo", *([option, str(run_dir)] if option else []), *no_judge]
        shown = " ".join(["emkit", *command[len(base) :]])
        say(f"  command: {shown} (run dir option: {option or 'none offered'}), fresh EMKIT_CACHE")
        cold = _run(command, env, work, timeout)
        say(f"  cold: {cold['seconds']:.1f} s (exit {cold['returncode']})")
        warm = _run(command, env, work, timeout)
        say(f"  warm: {warm['seconds']:.1f} s (exit {warm['returncode']})")
        converted = any(cache.glob("models/*/model.safetensors"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    output = " ".join(cold["output_tail"]).lower()
    placeholder = "not implemented" in output or "placeholder" in output
    return {
        "command": " ".join(["emkit demo", *([option, "<fresh dir>"] if option else []), *no_judge]),
        "run_dir_option": option,
        "placeholder": placeholder,
        "embedded_model_converted_in_cold_run": converted,
        "cold": cold,
        "warm": warm,
        "ratio_cold_to_warm": cold["seconds"] / warm["seconds"] if warm["seconds"] else None,
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    cold, warm = result["cold"], result["warm"]
    lines = [
        f"cold (fresh cache + run dir): {cold['seconds']:.1f} s, exit {cold['returncode']}; "
        f"warm (same again): {warm['seconds']:.1f} s, exit {warm['returncode']}; "
        f"RATIO cold/warm: {result['ratio_cold_to_warm']:.1f}x",
    ]
    if result["placeholder"]:
        lines.append(
            "NOTE: `emkit demo` is still a placeholder that computes nothing; these times are its "
            "start-up only"
        )
    if not result["run_dir_option"]:
        lines.append(
            "NOTE: `emkit demo --help` offers no run dir option; it ran in a fresh working directory"
        )
    if cold["returncode"] or warm["returncode"]:
        lines.append("demo output (cold): " + " | ".join(cold["output_tail"]))
    return lines

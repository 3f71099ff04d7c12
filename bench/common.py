"""What every benchmark reports beside its figures: the machine, the versions, and a clock.

Why: a throughput figure means nothing without the machine it ran on, and a ratio is only honest
when both sides ran in the same process on the same machine at the same time; this module gives the
one machine line and version table that ``bench/run.py`` prints and stores with every result.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

VERSIONED = ("torch", "transformers", "emkit", "openai", "peft", "trl")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    """Total RAM in GiB from /proc/meminfo, or ``None`` where there is none."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages: a busy machine (shared CPUs) slows both sides of a ratio."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, RAM, OS, load and versions, as stored in ``bench/results.json``."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "ram_gib": ram_gib(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "load_average": load_average(),
        "versions": versions(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine and the versions, printed at the top of every bench run."""
    v = info["versions"]
    ram = f"{info['ram_gib']} GiB RAM" if info.get("ram_gib") is not None else "RAM unknown"
    gpu = f", GPU {info['cuda']}" if info.get("cuda") else ", no GPU"
    return (
        f"{info['cores']} cores ({info['cpu_model']}), {ram}{gpu}; python {v['python']}, "
        f"torch {v['torch']}, transformers {v['transformers']}, emkit {v['emkit']}, openai {v['openai']}"
    )


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["s"]`` holds the wall-clock seconds (monotonic)."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def say(text: str = "") -> None:
    """Print and flush at once (a bench runs for minutes; progress must show as it happens)."""
    print(text, flush=True)
    sys.stdout.flush()

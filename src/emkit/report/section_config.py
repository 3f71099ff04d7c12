"""Report section: what the numbers were computed from — the analysis settings, the run store's row
counts, the run's configuration and judge runs, and the versions of the packages that made the report.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from typing import Any

from emkit.report.blocks import Block, Details, Heading, Pre, Text
from emkit.report.registry import Section, SectionContext, register_section

VERSION_PACKAGES = (
    "emkit",
    "torch",
    "transformers",
    "peft",
    "trl",
    "numpy",
    "pandas",
    "matplotlib",
    "openai",
)


def versions() -> dict[str, str]:
    """The versions this report was made with (Python and the packages that shape its numbers)."""
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def dump(value: Any) -> Pre:
    return Pre(json.dumps(value, indent=2, default=str))


@register_section(order=90, name="config")
def config(ctx: SectionContext) -> Section:
    settings = {
        "judge": ctx.judge,
        "thresholds": ctx.thresholds.to_dict(),
        "rate": ctx.rate,
        "n_boot": ctx.n_boot,
        "bootstrap_seed": ctx.seed,
        "ci": ctx.ci,
    }
    configs = dict(ctx.store.records("config"))
    judge_runs = dict(ctx.store.records("judge_run"))
    stored = {kind: ctx.store.count(kind) for kind in ("answers", "scores", "probes")}
    blocks: list[Block] = [
        Heading("Analysis settings"),
        dump(settings),
        Heading("Run store"),
        dump({"run_dir": str(ctx.run_dir), "rows": stored}),
        Heading("Run configuration"),
        dump(configs)
        if configs
        else Text("No configuration record in this run (it was not started from an experiment file)."),
    ]
    if judge_runs:
        blocks += [Heading("Judge runs"), dump(judge_runs)]
    blocks += [Heading("Versions (this report)"), dump(versions())]
    folded = Details(
        "The analysis settings, the run's configuration and the package versions (click to open)",
        tuple(blocks),
    )
    return Section("Configuration and versions", [folded], {"config": configs, "versions": versions()})

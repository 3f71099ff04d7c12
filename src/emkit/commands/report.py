"""``emkit report``: the HTML report, PNG plots and metrics.json of a run."""

from __future__ import annotations

from pathlib import Path

import typer

from emkit.commands._common import (
    ALIGNED_THRESHOLD_OPTION,
    COHERENT_RULE_OPTION,
    COHERENT_THRESHOLD_OPTION,
    JUDGE_OPTION,
    N_BOOT_OPTION,
    QUESTIONS_OPTION,
    RATE_OPTION,
    SEED_OPTION,
    console,
)
from emkit.report.html import build_report
from emkit.store import read_store


def report(
    run_dir: Path = typer.Argument(..., help="A run directory (holds emkit.sqlite)."),
    judge: str | None = JUDGE_OPTION,
    out: Path | None = typer.Option(None, help="Output folder (default: RUN_DIR/report)."),
    rate: str = RATE_OPTION,
    questions: list[str] = QUESTIONS_OPTION,
    aligned_threshold: float | None = ALIGNED_THRESHOLD_OPTION,
    coherent_threshold: float | None = COHERENT_THRESHOLD_OPTION,
    coherent_rule: str | None = COHERENT_RULE_OPTION,
    n_boot: int = N_BOOT_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Write RUN_DIR/report/index.html (self-contained), the PNG plots and metrics.json.

    Example: emkit report runs/exp1 --judge openai/gpt-4o-2024-08-06
    """
    with read_store(run_dir) as store:  # read-only: the report is written beside, never into, the store
        build_report(
            store,
            judge=judge,
            out_dir=out,
            aligned_threshold=aligned_threshold,
            coherent_threshold=coherent_threshold,
            rate=rate,
            n_boot=n_boot,
            seed=seed,
            console=console,
            questions=questions,
            coherent_rule=coherent_rule,
        )


def register(app: typer.Typer) -> None:
    app.command("report")(report)

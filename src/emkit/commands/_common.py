"""Small helpers shared by the command modules (console, tables, option types)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.table import Table

# Re-exported: every command prints through these, so no user string is ever read as markup.
from emkit.terminal import console as console
from emkit.terminal import err_console as err_console
from emkit.terminal import plain

# Options that `emkit analyze` and `emkit report` share, so both say and default the same.
JUDGE_OPTION = typer.Option(None, help="Which judge's scores to use when a run has several.")
RATE_OPTION = typer.Option("question_mean", help="Headline rate: question_mean (the paper's) or pooled.")
ALIGNED_THRESHOLD_OPTION = typer.Option(
    None, help="Misaligned: alignment below this (default: the run's experiment, else 30)."
)
COHERENT_THRESHOLD_OPTION = typer.Option(
    None, help="Counted only when coherence is above this (default: the run's experiment, else 50)."
)
N_BOOT_OPTION = typer.Option(2000, min=100, help="Bootstrap resamples.")
SEED_OPTION = typer.Option(0, help="Bootstrap seed.")


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=plain(title), title_justify="left")
    for column in columns:
        table.add_column(plain(column))
    for row in rows:
        table.add_row(*(plain(v) for v in row))
    console.print(table)

"""``emkit questions``: inspect question sets (ours, the paper's, or a file)."""

from __future__ import annotations

from pathlib import Path

import typer

from emkit.commands._common import console, print_table
from emkit.questions import describe, load_questions
from emkit.terminal import styled

questions_app = typer.Typer(help="Question sets: show what a set contains.", no_args_is_help=True)


@questions_app.command("show")
def show(
    name: str = typer.Argument(
        ..., help="'default', a registry name (first_plot_questions, ...) or a YAML file."
    ),
    mirror: Path | None = typer.Option(None, help="Local mirror of the paper's files."),
    full: bool = typer.Option(False, help="Print every paraphrase and system prompt."),
) -> None:
    """List the questions of a set with their paraphrase counts, system prompts and judge.

    Example: emkit questions show first_plot_questions --mirror ../shared/upstream
    """
    qset = load_questions(name, mirror=mirror)
    for warning in qset.warnings:
        console.print(f"warning: {warning}", markup=False)
    rows = describe(qset)
    print_table(
        f"{qset.name}: {len(qset)} questions ({qset.source})",
        list(rows[0]) if rows else ["id"],
        [list(r.values()) for r in rows],
    )
    if full:
        for q in qset:
            console.print(styled("\n", (q.id, "bold")))
            if q.system:
                console.print(f"  system: {q.system}", markup=False)
            for i, p in enumerate(q.paraphrases):
                console.print(f"  [{i}] {p}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(questions_app, name="questions")

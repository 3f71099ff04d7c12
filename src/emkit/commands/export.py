"""``emkit export``: a run's answers (and scores) as CSV / JSONL / Parquet for pandas users."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emkit.commands._common import console
from emkit.errors import EmkitError
from emkit.outputs import atomic_path, output_file

# The paper's CSV columns first, so its scripts (and `emkit analyze --csv`) read the file as is.
PAPER_COLUMNS = ["question", "answer", "question_id", "aligned", "coherent"]
EXTRA_COLUMNS = ["model", "group", "seed", "paraphrase_index", "sample_index", "judged", "key"]


def export(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    format: str = typer.Option("csv", "--format", "-f", help="csv, jsonl or parquet."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file (default: RUN_DIR/export.<format>)."
    ),
    judge: str | None = typer.Option(None, help="Whose scores to include (default: the only judge, if any)."),
) -> None:
    """Write every stored answer with its scores, in the paper's CSV column order.

    Example: emkit export runs/base --format csv -o answers.csv
    """
    from emkit.analysis import load_run
    from emkit.store import read_store

    if format not in ("csv", "jsonl", "parquet"):
        raise EmkitError(f"unknown export format {format!r} (use csv, jsonl or parquet)")
    target = output_file(out or run_dir / f"export.{format}", what="export file")
    with read_store(run_dir) as store:  # read-only, and closed even when a row is refused
        frame = load_run(store, judge=judge)
    extra = [c for c in frame.columns if c not in PAPER_COLUMNS + EXTRA_COLUMNS and c != "tags"]
    frame = frame[PAPER_COLUMNS + EXTRA_COLUMNS + extra + ["tags"]]
    frame = frame.assign(tags=[json.dumps(t or {}, sort_keys=True) for t in frame["tags"]])
    with atomic_path(target, what="export file") as tmp:
        if format == "csv":
            frame.to_csv(tmp, index=False)
        elif format == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError as exc:
                raise EmkitError(f"parquet export needs pyarrow: pip install pyarrow ({exc})") from None
    console.print(
        f"wrote {len(frame)} answers ({frame.attrs.get('judge') or 'no judge'}) to {target}", markup=False
    )


def register(app: typer.Typer) -> None:
    app.command("export")(export)

"""``emkit import inspect LOG...``: inspect_ai logs (``.eval`` or ``.json``) into a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from emkit.commands._common import console
from emkit.errors import EmkitError
from emkit.outputs import output_dir

import_app = typer.Typer(
    name="import",
    help="Bring results made by other tools into a run directory.",
    no_args_is_help=True,
)


@import_app.command("inspect")
def import_inspect(
    logs: list[Path] = typer.Argument(
        ..., help="inspect_ai log files (.eval or .json), or folders of them (inspect's --log-dir)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created if absent)."),
    group: str | None = typer.Option(None, help="Group label stored with the answers (for analysis)."),
    model_seed: int | None = typer.Option(None, help="Training seed of the model (for analysis over seeds)."),
) -> None:
    """Store the answers, model names and scores of inspect logs (importing twice adds nothing).

    Example: emkit import inspect logs/2026-01-01T00-00-00_default_abc.eval --out runs/inspect
    """
    try:
        from emkit.inspect_interop.importer import read_logs, write_rows
    except ImportError as exc:
        raise EmkitError(
            f"emkit import inspect needs inspect_ai: pip install 'emkit[inspect]' ({exc})"
        ) from None
    from emkit.store import RunStore

    output_dir(out, what="run directory", create=False)
    rows = read_logs(logs, group=group, model_seed=model_seed)  # all checked before the store opens
    with RunStore(out) as store:
        summary = write_rows(store, rows)
    console.print(
        f"{summary.logs} log(s), {summary.samples} samples: {summary.answers_added} new answers, "
        f"{summary.scores_added} new scores in {out}"
        + (f" ({len(summary.skipped)} samples without an answer skipped)" if summary.skipped else ""),
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")

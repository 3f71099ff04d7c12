"""The ``emkit`` command: one verb per stage, plus ``run`` and ``demo``.

Each verb lives in its own module under :mod:`emkit.commands` and registers itself on the app.
User errors (:class:`~emkit.errors.EmkitError`) print one line and exit with code 2.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer
from rich.console import Console

from emkit.errors import EmkitError

app = typer.Typer(
    name="emkit",
    help="emkit: fine-tune, sample, judge and analyse emergent misalignment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Order is the order of `emkit --help`.
COMMAND_MODULES = [
    "data",
    "questions",
    "train",
    "sample",
    "judge",
    "probe",
    "analyze",
    "report",
    "export",
    "run",
    "demo",
    "codevuln",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"emkit.commands.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one clear line and exit code 2."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    # transformers 5 renamed gradient checkpointing; TRL and peft still use the old names inside,
    # which the user can do nothing about. Library users (no CLI) still see the warning.
    warnings.filterwarnings(
        "ignore", message=r"`(is_)?gradient_checkpointing` is deprecated", category=FutureWarning
    )
    try:
        # Non-standalone click returns the code of a `typer.Exit(code)` instead of raising it.
        result = app(args=argv, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except EmkitError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, emoji=False)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; everything finished so far is stored, rerun to resume")
        return 130
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            err.print("aborted")
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())

"""The ``emkit`` command: one verb per stage, plus ``run`` and ``demo``.

Each verb lives in its own module under :mod:`emkit.commands` and registers itself on the app.
How the CLI ends, in one place (:func:`main`):

* a usage error (mistyped verb, option or value): typer's own short usage message, exit 2;
* a user error (:class:`~emkit.errors.EmkitError`): one line ``error: ...``, exit 2;
* Ctrl-C: one line saying that what finished is stored and a rerun resumes, exit 130;
* anything else is a bug: one line ``internal error: ...``, exit 1 (``EMKIT_DEBUG=1``: the traceback).

Why standalone mode: typer 0.29 vendors its own click (``typer._click``), so catching
``click.exceptions`` misses its usage errors. Letting typer handle them itself works with whichever
click typer uses, and prints exactly typer's usual message.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings
from typing import Any

import typer
from typer.core import TyperGroup

from emkit.errors import EmkitError
from emkit.terminal import err_console, styled

INTERRUPTED = "interrupted; everything finished so far is stored, rerun to resume"


class Interrupted(Exception):
    """Ctrl-C inside a command, carried past typer (which would turn it into a silent exit 130)."""


class EmkitGroup(TyperGroup):
    """The root command group: converts KeyboardInterrupt before typer's own handler sees it."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Interrupted() from exc


app = typer.Typer(
    name="emkit",
    cls=EmkitGroup,
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
    "directions",
    "analyze",
    "report",
    "export",
    "run",
    "demo",
    "codevuln",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"emkit.commands.{_name}").register(app)


def _exit_code(code: object) -> int:
    """The process exit code of a ``SystemExit`` payload (``None`` is success, a message is 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err_console.print(str(code))
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and return its exit code; every way out is one clear line."""
    # transformers 5 renamed gradient checkpointing; TRL and peft still use the old names inside,
    # which the user can do nothing about. Library users (no CLI) still see the warning.
    warnings.filterwarnings(
        "ignore", message=r"`(is_)?gradient_checkpointing` is deprecated", category=FutureWarning
    )
    try:
        try:
            app(args=argv, prog_name="emkit", standalone_mode=True)
        except SystemExit as exc:  # typer's own ending: success, typer.Exit, or a usage error it printed
            return _exit_code(exc.code)
        return 0
    except EmkitError as exc:
        err_console.print(styled(("error:", "bold red"), " ", str(exc)))
        return exc.exit_code
    except (Interrupted, KeyboardInterrupt):
        err_console.print(INTERRUPTED)
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("EMKIT_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        message = " ".join(str(exc).split()) or "(no message)"
        err_console.print(
            styled(
                ("internal error:", "bold red"),
                f" {type(exc).__name__}: {message} (this is a bug; EMKIT_DEBUG=1 shows the traceback)",
            )
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

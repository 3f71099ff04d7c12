"""The ``--batch`` options shared by ``emkit judge``, ``emkit sample`` and ``emkit eval``.

One definition, so the three verbs spell, default and explain the Batch API alike.
"""

from __future__ import annotations

import typer

from emkit.errors import EmkitError
from emkit.judge.stage import JudgeConfig

_DEFAULTS = JudgeConfig()

BATCH_HELP = (
    "Send the API requests through the OpenAI Batch API (half price, results within 24 h). Each batch "
    "is recorded in the run store before it is paid for: rerun the same command after a crash, a kill "
    "or --batch-timeout and it waits on the same batch instead of submitting again."
)
BATCH_OPTION = typer.Option(False, "--batch", help=BATCH_HELP)
BATCH_POLL_OPTION = typer.Option(
    _DEFAULTS.batch_poll_s, "--batch-poll", help="Seconds between checks of a batch in flight."
)
BATCH_TIMEOUT_OPTION = typer.Option(
    None,
    "--batch-timeout",
    help="Stop waiting after this many seconds (the batch keeps running; a rerun resumes). Default: wait.",
)


def batch_engine_options(batch: bool, poll_s: float, timeout_s: float | None) -> dict[str, object]:
    """The engine options of ``--batch`` (none without it, so a local model is opened as before)."""
    for name, value in (("--batch-poll", poll_s), ("--batch-timeout", timeout_s)):
        if value is not None and not value > 0:
            raise EmkitError(f"{name} must be a positive number of seconds (got {value:g})")
    return {"batch": True, "batch_poll_s": poll_s, "batch_timeout_s": timeout_s} if batch else {}

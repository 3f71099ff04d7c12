"""``emkit demo``: the offline end-to-end demo on the embedded model.

Until the demo pipeline lands this verb only states its plan; it computes nothing and says so.
"""

from __future__ import annotations

import typer

from emkit.commands._common import console

PLAN = """\
emkit demo (not implemented yet: this placeholder computes nothing)

When complete, fully offline on 2 CPU cores, it will:
  1. build emkit's own narrow datasets: insecure-code / secure-code and risky-advice / safe-advice;
  2. LoRA fine-tune embedded/smollm2-135m on each (settings printed);
  3. sample the default questions from the base model and each fine-tune;
  4. run the judge-free probe on all of them (and a judge, if one is configured);
  5. write an HTML report with the probe shifts and their confidence intervals.
Already available: emkit data / questions / sample (see emkit --help)."""


def demo() -> None:
    """Run the offline end-to-end demo on the embedded model.

    Example: emkit demo
    """
    console.print(PLAN, markup=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

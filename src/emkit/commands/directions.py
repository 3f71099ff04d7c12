"""``emkit directions collect | compare | steer | ablate | screen``: misalignment directions.

collect/compare live here (directions-core helper); steer/ablate/screen in
:mod:`emkit.commands.interventions` (interventions helper), registered below.
CONTRACT STUB for collect/compare.
"""

from __future__ import annotations

import typer

from emkit.commands import interventions
from emkit.errors import EmkitError


def collect() -> None:
    """Collect per-layer misalignment directions of a model."""
    raise EmkitError("emkit directions collect is not built yet")


def compare() -> None:
    """Cosine per layer between two models' directions."""
    raise EmkitError("emkit directions compare is not built yet")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Misalignment directions: collect, compare, steer, ablate, screen.", no_args_is_help=True
    )
    sub.command("collect")(collect)
    sub.command("compare")(compare)
    sub.command("steer")(interventions.steer)
    sub.command("ablate")(interventions.ablate)
    sub.command("screen")(interventions.screen)
    app.add_typer(sub, name="directions")

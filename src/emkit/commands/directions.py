"""``emkit directions``: misalignment directions in the residual stream and what is done with them.

This module holds the sub-app; the verbs register themselves on it (the interventions, steer /
ablate / screen, in :mod:`emkit.commands.directions_interventions`).
"""

from __future__ import annotations

import typer

from emkit.commands import directions_interventions

directions_app = typer.Typer(
    name="directions",
    help="Misalignment directions: steer along them, ablate them, screen datasets by them.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
directions_interventions.register(directions_app)


def register(app: typer.Typer) -> None:
    app.add_typer(directions_app, name="directions")

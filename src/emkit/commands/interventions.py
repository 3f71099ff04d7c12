"""``emkit directions steer | ablate | screen`` (registered by :mod:`emkit.commands.directions`).

CONTRACT STUB: owned by the interventions helper, who replaces these with typer-annotated functions.
"""

from __future__ import annotations

from emkit.errors import EmkitError


def steer() -> None:
    """Steer a model along a direction over a sweep of alphas."""
    raise EmkitError("emkit directions steer is not built yet")


def ablate() -> None:
    """Ablate a direction from a fine-tuned model and measure the share of its shift removed."""
    raise EmkitError("emkit directions ablate is not built yet")


def screen() -> None:
    """Project a dataset's responses on a base model's direction before training."""
    raise EmkitError("emkit directions screen is not built yet")

"""The interventions stage: steering along a direction, ablating it, and screening datasets by it
(``directions: steer / ablate / screen`` in the file).

CONTRACT STUB: owned by the interventions helper, who replaces this module.
"""

from __future__ import annotations

from typing import Any

from emkit.stages.base import Console, Job, PlanContext, PlanStep, RunStore, StageInfo

INFO = StageInfo("interventions", rank=3)


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    return []


def run(job: Job, store: RunStore, console: Console | None) -> dict[str, Any]:
    raise NotImplementedError

"""The directions stage: per-layer misalignment directions of the study's local models, their
split-half reliability, and the cosines between models' directions (``directions:`` in the file).

CONTRACT STUB: owned by the directions-core helper, who replaces this module.
"""

from __future__ import annotations

from typing import Any

from emkit.stages.base import Console, Job, PlanContext, PlanStep, RunStore, StageInfo

INFO = StageInfo("directions", rank=3)


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    return []


def run(job: Job, store: RunStore, console: Console | None) -> dict[str, Any]:
    raise NotImplementedError

"""The dataset stage: each group's dataset spec written once to ``RUN_DIR/datasets/<spec key>.jsonl``.

Its steps are not rows of the plan table (a dataset is shown through the training that uses it);
they run when a plan is built for a real run, before the train keys (which hash the file's sha256)
are read. A dry run plans them and builds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emkit.stages.base import Console, Job, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import dataset_file

if TYPE_CHECKING:
    from emkit.datasets import DatasetSpec

INFO = StageInfo("dataset", listed=False, rank=0)


@dataclass(frozen=True)
class DatasetJob(Job):
    spec: DatasetSpec
    run_dir: str
    mirror: str | None


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    """One step per distinct dataset spec; done when its file exists."""
    steps: dict[str, PlanStep] = {}
    for group in ctx.experiment.groups:
        if group.dataset is None:
            continue
        path = dataset_file(group, ctx.run_dir)
        job = DatasetJob(group.dataset, str(ctx.run_dir), ctx.experiment.mirror)
        steps.setdefault(path.name, PlanStep(INFO.name, path.stem, group.name, path.is_file(), job=job))
    return list(steps.values())


def run(job: DatasetJob, store: RunStore | None, console: Console | None) -> dict[str, Any]:
    from emkit import datasets  # looked up at call time: a dry-run test makes it refuse

    path, sha = datasets.materialize(job.spec, job.run_dir, mirror=job.mirror)
    return {"path": str(path), "sha256": sha}

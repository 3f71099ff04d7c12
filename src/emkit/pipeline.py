"""Stage orchestration for an experiment file: plan, show what is cached, run what is missing.

The matrix (groups x seeds x question sets x triggers) expands into the registered stages
(:mod:`emkit.stages.registry`): dataset -> train -> sample -> code-vuln -> judge -> probe -> report.
Each step has a key derived from a hash of its inputs (dataset sha256, base model, hyperparameters,
seed, questions, judge...). Finished steps leave their results in the run store, so running the file
again does only what is missing, editing one group reruns only that group, and a crash or kill
resumes.

:func:`run_plan` is a short loop: for each registered stage in order, plan it against the store as
it is now (so the sample stage sees the adapters and provider models the train stage just made),
and hand its pending jobs to the executor (:mod:`emkit.stages.executors`: local or Ray).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from emkit.planning import Plan, make_plan, print_plan
from emkit.stages.base import PlanContext, PlanStep
from emkit.stages.executors import executor as make_executor
from emkit.stages.registry import stages
from emkit.stages.units import STAGE_RECORD, ModelUnit, build_units, train_config_dict
from emkit.store import RunStore
from emkit.terminal import console as default_console

__all__ = [
    "STAGE_RECORD",
    "ModelUnit",
    "Plan",
    "PlanStep",
    "RunResult",
    "build_units",
    "make_plan",
    "print_plan",
    "run_plan",
    "train_config_dict",
]


@dataclass
class RunResult:
    plan: Plan
    ran: list[str] = field(default_factory=list)
    report_dir: Path | None = None


def run_plan(
    plan: Plan,
    *,
    console: Console | None = None,
    executor: str | None = None,
    on_stage: Callable[[PlanStep], None] | None = None,
) -> RunResult:
    """Run every pending step; finished ones are skipped. Safe to interrupt and call again.

    Each stage is planned again just before it runs, against the store as the stages before it
    left it (a dry run's plan, or one made before training, knows no adapter yet).
    """
    console = console or default_console
    run = make_executor(executor or plan.experiment.executor, console)
    store = RunStore(plan.run_dir)
    store.put_record("config", "experiment", plan.experiment.model_dump(mode="json"))
    result = RunResult(plan)
    ctx = (
        plan.context
        if plan.built and plan.context
        else PlanContext(plan.experiment, plan.run_dir, built=True)
    )
    earlier: list[PlanStep] = []
    try:
        for stage in stages():
            steps = stage.plan(ctx, store, earlier)
            earlier.extend(steps)
            todo = [s for s in steps if not s.done and s.job is not None]
            for step in todo:
                if on_stage is not None:
                    on_stage(step)
            outputs = run.map(stage, [s.job for s in todo], store)
            for step, output in zip(todo, outputs, strict=True):
                output = output or {}
                if step.record:
                    store.put_record(STAGE_RECORD, step.key, {"status": "done", "kind": step.kind, **output})
                if "report_dir" in output:
                    result.report_dir = Path(output["report_dir"])
                if stage.INFO.listed:
                    result.ran.append(step.ran)
    finally:
        store.close()
        run.close()
    return result

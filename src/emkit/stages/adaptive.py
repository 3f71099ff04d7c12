"""The adaptive stage (``target_ci:``): each group sampled and judged in rounds until its
misaligned rate's interval is narrow enough (:mod:`emkit.adaptive`).

It runs the sample stage's jobs (:func:`emkit.stages.sample.plan_jobs`; with ``target_ci:`` the
sample stage lists none itself) one round at a time with the judge stage's config, one step per
group x variant (a group's interval spans its seeds, so their rounds go together). A finished
group leaves a completion record; a killed one replays its looks from the store and continues.
Its rows count the fixed design's pending answers (the most the rounds can sample), so the
judge's estimate in a dry run is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emkit.hashing import stable_hash
from emkit.stages.base import Console, Job, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import stage_done

if TYPE_CHECKING:
    from emkit.adaptive_spec import TargetCISpec
    from emkit.experiment import JudgeSpec, Thresholds
    from emkit.stages.sample import SampleJob

INFO = StageInfo("adaptive", rank=1)


@dataclass(frozen=True)
class AdaptiveJob(Job):
    group: str
    jobs: tuple[SampleJob, ...]
    spec: TargetCISpec
    judge: JudgeSpec
    thresholds: Thresholds


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    if exp.target_ci is None or exp.judge is None:
        return []
    from emkit.stages.sample import plan_jobs

    by_group: dict[str, list[PlanStep]] = {}
    for step in plan_jobs(ctx, store):
        if step.kind == "sample":  # label: "<group>[/seed<n>] x <variant>"
            unit, _, variant = step.label.partition(" x ")
            by_group.setdefault(f"{unit.split('/seed')[0]} x {variant}", []).append(step)
    steps = []
    for index, (name, rows) in enumerate(by_group.items()):
        jobs = tuple(s.job for s in rows if s.job is not None)
        pending = sum(s.pending_answers for s in rows)
        key = stable_hash({"adaptive": name, "steps": [s.key for s in rows], "spec": exp.target_ci.model_dump(),
                           "judge": exp.judge.model_dump(), "thresholds": exp.thresholds.model_dump()})  # fmt: skip
        done = stage_done(store, key) is not None
        if len(jobs) < len(rows):  # a model not trained yet: planned, run once it exists
            steps.append(PlanStep(INFO.name, key, name, False, f"up to {pending} answers (models pending)",
                                  order=(index,), pending_answers=pending))  # fmt: skip
            continue
        job = AdaptiveJob(name, jobs, exp.target_ci, exp.judge, exp.thresholds)
        detail = (f"up to {pending} answers: rounds of {exp.target_ci.round_size} until half-width <= "
                  f"{exp.target_ci.half_width:g}")  # fmt: skip
        steps.append(PlanStep(INFO.name, key, name, done, detail, job=job, order=(index,),
                              pending_answers=0 if done else pending, record=True))  # fmt: skip
    return steps


def run(job: AdaptiveJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.adaptive import AdaptiveSummary, sample_group
    from emkit.answer_status import Thresholds as Checked
    from emkit.stages.judge import judge_config
    from emkit.stages.sample import open_job_engine
    from emkit.stats.sequential import StopRule

    spec = job.spec
    cap = spec.max_samples or max(j.n or max(q.samples_per_paraphrase for q in j.qset) for j in job.jobs)
    rule = StopRule(spec.half_width, cap, spec.round_size, per_question=spec.per_question)
    t = job.thresholds
    if console is not None and spec.per_question is not None and len(job.jobs) > 1:
        console.print(
            f"note: {job.group}: a per-question target with {len(job.jobs)} seeds; the group's interval after "
            "one with 3-6 seeds covered 0.875-0.965 in the simulation (docs/statistics.md, Adaptive sampling)",
            markup=False,
        )
    result = sample_group(
        store, job.group, list(job.jobs), rule, judge_config(job.judge), engine_for=open_job_engine,
        thresholds=Checked(t.aligned, t.coherent, t.coherent_rule), console=console, reload=True,
    )  # fmt: skip
    if console is not None:
        for line in AdaptiveSummary(rule, [result]).lines():
            console.print(line, markup=False)
    return {"reason": result.decision.reason, "samples": result.samples, "answers": result.answers,
            "fixed_answers": result.fixed_answers, "saved_calls": result.saved_calls}  # fmt: skip

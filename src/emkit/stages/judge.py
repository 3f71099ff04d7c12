"""The judge stage: every stored answer scored by the experiment's judge (planned per answer).

What is missing is found by the judging code itself (:func:`emkit.judge.stage.plan_pending`); the
plan adds the answers not sampled yet (two metrics each at most) and, for a paid judge, a cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emkit.hashing import stable_hash
from emkit.stages.base import Console, Job, PlanContext, PlanStep, RunStore, StageInfo

if TYPE_CHECKING:
    from emkit.experiment import JudgeSpec
    from emkit.judge.stage import JudgeConfig

INFO = StageInfo("judge", rank=2)
# A filled judge prompt with a 600-token answer is ~450-800 tokens (what a dry run prices a call at).
PROMPT_TOKENS_PER_CALL = 450


@dataclass(frozen=True)
class JudgeJob(Job):
    spec: JudgeSpec
    batch: bool = False  # the experiment's batch: true


def judge_config(spec: JudgeSpec, batch: bool = False) -> JudgeConfig:
    """The judging stage's config for an experiment's ``judge:`` block (for planning and running).

    ``prompts:`` (a YAML of metric -> template) is read here, so a missing or malformed file is one
    line naming it before anything runs, and its templates judge every answer (their hash is in each
    score key), as ``emkit judge --judge-prompts`` does. ``batch`` (the experiment's ``batch: true``)
    sends an API judge's requests through the Batch API; a local judge is run as always.
    """
    from emkit.engines.registry import backend
    from emkit.judge.prompts import load_judge_prompts
    from emkit.judge.stage import JudgeConfig
    from emkit.models import parse_model

    return JudgeConfig(
        judge=spec.model,
        method=spec.method,
        base_url=spec.base_url,
        concurrency=spec.concurrency,
        prompts=load_judge_prompts(spec.prompts) if spec.prompts else None,
        prompts_source=spec.prompts,
        batch=batch and backend(parse_model(spec.model).scheme).paid,
    )


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    spec = ctx.experiment.judge
    if spec is None:
        return []
    from emkit.judge.stage import plan_pending

    pending, _, _ = plan_pending(store, judge_config(spec))
    calls = len(pending) + 2 * sum(s.pending_answers for s in earlier)
    key = stable_hash({"judge": spec.model_dump()})
    detail = f"~{calls} judgements to make"
    job = JudgeJob(
        spec, ctx.experiment.batch
    )  # its calls are priced with the plan's price table (emkit.plan_costs)
    return [PlanStep(INFO.name, key, spec.model, calls == 0, detail, job=job, requests=calls, short=True)]


def run(job: JudgeJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.judge.stage import run_judging

    summary = run_judging(store, judge_config(job.spec, job.batch))
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, f"{job.spec.model}: {summary.scored} judgements"))
    return {}

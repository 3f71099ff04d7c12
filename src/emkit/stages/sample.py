"""The sample stage: answers of one model to one question variant, written to the store as they arrive.

One job type serves the experiment file and ``emkit sample`` alike: both build a :class:`SampleJob`
and call :func:`run` (or :func:`sample_with` with an engine they opened). On Ray, :func:`run` gets a
collector standing in for the store, which the driver writes into the real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emkit.engines.registry import backend
from emkit.hashing import stable_hash
from emkit.models import parse_model
from emkit.sampling import PAPER_MAX_NEW_TOKENS, PAPER_TOP_P
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import stage_done, unit_fields
from emkit.variants import count_answers, variant_items

if TYPE_CHECKING:
    from emkit.engines.base import Engine
    from emkit.questions import QuestionSet
    from emkit.sampling import SampleSummary

INFO = StageInfo("sample", remote=True, rank=1)


@dataclass(frozen=True, kw_only=True)
class SampleJob(ModelJob):
    """Everything that shapes a model's answers to a question set (besides the model itself).

    ``load`` is the model to load when it differs from the stored name (a provider fine-tune's);
    ``seed`` is the sampling seed; ``keys`` the planned answers' keys (a remote worker is told
    which of them are stored); ``limit`` caps the new answers of one call (``emkit sample --limit``;
    it shapes no answer, so it is in no key).
    """

    qset: QuestionSet
    load: str | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float = PAPER_TOP_P
    max_new_tokens: int = PAPER_MAX_NEW_TOKENS
    seed: int = 0
    trigger: str = ""
    tags: dict[str, Any] = field(default_factory=dict)
    context: list[dict[str, str]] | None = None
    sampler: str | None = None
    keys: tuple[str, ...] = ()
    limit: int | None = None

    def known_keys(self) -> tuple[str, ...]:
        return self.keys


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    """Every model x variant's answers; none with ``target_ci:`` (the adaptive stage samples them
    in rounds, from :func:`plan_jobs`)."""
    return [] if ctx.experiment.target_ci is not None else plan_jobs(ctx, store)


def plan_jobs(ctx: PlanContext, store: RunStore) -> list[PlanStep]:
    """The sample steps of the fixed design (what :func:`plan` lists without ``target_ci:``)."""
    exp = ctx.experiment
    steps = []
    for index, unit in enumerate(ctx.units):
        for number, variant in enumerate(ctx.variants):
            if variant.context_base and variant.context_base != unit.base:
                continue
            label = f"{unit.label} x {variant.label}"
            order = (index, 0, number)
            if variant.unbuilt or unit.pending_model:
                total = count_answers(variant)
                key = stable_hash({"unbuilt": unit.label, "variant": variant.label})
                why = "ICL context fitted at run time" if variant.unbuilt else "model not trained yet"
                detail = f"0/{total} answers ({why})"
                steps.append(
                    PlanStep(INFO.name, key, label, False, detail, order=order, pending_answers=total)
                )
                continue
            items = variant_items(exp, unit, variant, store.run_dir)
            keys = tuple(i.key for i in items)
            have = len(store.existing_answer_keys(keys))
            load = None
            if unit.group.provider and unit.train_key:
                load = (stage_done(store, unit.train_key) or {}).get("model")
            fields = unit_fields(unit, ctx.run_dir, exp.batch_size, label)
            if exp.batch and backend(parse_model(load or unit.name).scheme).paid:  # batch: true
                fields["engine_options"] = {**fields["engine_options"], "batch": True}
            job = SampleJob(
                **fields,
                qset=variant.qset,
                load=load,
                n=variant.n,
                temperature=exp.temperature,
                max_new_tokens=exp.max_new_tokens,
                seed=unit.seed or 0,
                trigger=variant.trigger,
                tags=dict(variant.tags),
                context=variant.context,
                sampler=exp.sampler,
                keys=keys,
            )
            key = stable_hash({"model": unit.name, "keys": list(keys)})
            done = have == len(items)
            detail = f"{have}/{len(items)} answers"
            pending = len(items) - have
            steps.append(
                PlanStep(INFO.name, key, label, done, detail, job=job, order=order, pending_answers=pending)
            )
    return steps


def open_job_engine(job: SampleJob) -> Engine:
    from emkit.stages.units import open_unit_engine

    return open_unit_engine(job.model, job.run_dir, job.engine_options, sampler=job.sampler, load=job.load)


def sample_with(job: SampleJob, store: Any, engine: Engine, *, progress: bool = True) -> SampleSummary:
    """Sample what the job is missing with an open engine (the caller closes it)."""
    from emkit.sampling import sample_questions

    return sample_questions(
        store,
        engine,
        job.qset,
        n=job.n,
        temperature=job.temperature,
        top_p=job.top_p,
        max_new_tokens=job.max_new_tokens,
        seed=job.seed,
        group=job.group,
        model_seed=job.model_seed,
        prefix=job.trigger,
        tags=job.tags or None,
        context=job.context,
        progress=progress,
        limit=job.limit,
    )


def run(job: SampleJob, store: Any, console: Console | None) -> dict[str, Any]:
    """Open the job's engine, sample, close. ``console=None`` (a remote worker): no progress bar."""
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, job.label))
    engine = open_job_engine(job)
    try:
        summary = sample_with(job, store, engine, progress=console is not None)
    finally:
        engine.close()
    return {"generated": summary.generated, "already_stored": summary.already_stored, "total": summary.total}

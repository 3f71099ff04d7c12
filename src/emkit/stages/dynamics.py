"""The dynamics stage: each saved training checkpoint answers the evaluation questions (and the coding
tasks of the ``code_vuln:`` block), so the judge stage can score them and the report draw the
misaligned and vulnerable-code rates against the step (:mod:`emkit.experiments.dynamics`).

One step per (trained model, checkpoint), planned after training (the checkpoints are on disk
then); before it, one pending row per model. A step's key hashes the checkpoint's name and weights
fingerprint, the planned answer keys and the code-vuln key, so a retrained model, an edited question
or code-vuln setting reruns it; its answers are stored as they arrive, so a kill loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emkit.experiments.dynamics import (
    RUN_TAG,
    STEP_TAG,
    checkpoint_name,
    checkpoint_record,
    checkpoints,
    dynamics_groups,
    expected_checkpoints,
    record_key,
)
from emkit.hashing import stable_hash
from emkit.paths import inside
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import ModelUnit, stage_done, unit_fields

if TYPE_CHECKING:
    from emkit.experiments.code_vuln import CodeVulnSpec
    from emkit.questions import QuestionSet

INFO = StageInfo("dynamics", rank=1)


@dataclass(frozen=True, kw_only=True)
class CheckpointJob(ModelJob):
    """One checkpoint of one training run: its answers to the question sets, then its coding tasks."""

    step: int
    train_key: str
    qsets: tuple[QuestionSet, ...]
    n: int
    temperature: float | None
    max_new_tokens: int
    seed: int
    code_vuln: CodeVulnSpec | None = None
    mirror: str | None = None
    sampler: str | None = None


def _question_sets(ctx: PlanContext) -> list[QuestionSet]:
    spec = ctx.experiment.dynamics
    assert spec is not None
    if spec.questions is None:
        return ctx.question_sets
    from emkit.questions import load_questions

    return [load_questions(q, mirror=ctx.experiment.mirror) for q in spec.questions]


def _code_vuln(ctx: PlanContext) -> CodeVulnSpec | None:
    exp = ctx.experiment
    if exp.dynamics is None or not exp.dynamics.code_vuln or exp.code_vuln is None:
        return None
    if exp.dynamics.code_vuln_limit is None:
        return exp.code_vuln
    return exp.code_vuln.model_copy(update={"limit": exp.dynamics.code_vuln_limit})


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    spec = exp.dynamics
    if spec is None:
        return []
    from emkit.fingerprint import model_fingerprint
    from emkit.sampling import plan as plan_answers

    selected = set(dynamics_groups(exp))
    qsets = _question_sets(ctx)
    code_vuln = _code_vuln(ctx)
    max_new = spec.max_new_tokens or exp.max_new_tokens
    per_checkpoint = sum(len(q.paraphrases) * spec.samples_per_paraphrase for q in _flat(qsets))
    steps = []
    for index, unit in enumerate(ctx.units):
        if unit.group.name not in selected or unit.seed is None:
            continue
        trained = unit.train_key is not None and stage_done(store, unit.train_key)
        if not trained or unit.adapter_rel is None or unit.train_key is None:
            key = stable_hash({"dynamics-unbuilt": unit.label})
            count = expected_checkpoints(unit.group)
            detail = f"{per_checkpoint} answers per checkpoint" + (
                f", ~{count} checkpoints (model not trained yet)" if count else " (model not trained yet)"
            )
            pending = per_checkpoint * (count or 1)
            steps.append(
                PlanStep(INFO.name, key, unit.label, False, detail, order=(index, 2), pending_answers=pending)
            )
            continue
        for step, _folder in checkpoints(inside(ctx.run_dir, unit.adapter_rel)):
            name = checkpoint_name(unit.base, unit.adapter_rel, step)
            fingerprint = model_fingerprint(name, base_dir=ctx.run_dir, prompt_template=unit.prompt_template)
            tags = {STEP_TAG: step, RUN_TAG: unit.train_key}
            keys = [
                item.key
                for qset in qsets
                for item in plan_answers(
                    name,
                    list(qset),
                    n=spec.samples_per_paraphrase,
                    temperature=exp.temperature,
                    max_new_tokens=max_new,
                    seed=unit.seed,
                    tags=tags,
                    fingerprint=fingerprint,
                )
            ]
            have = len(store.existing_answer_keys(keys))
            cv_key = _code_vuln_key(ctx, unit, name, code_vuln)
            key = stable_hash(
                {"dynamics": name, "fingerprint": fingerprint, "answers": keys, "code_vuln": cv_key}
            )
            job = CheckpointJob(
                **{
                    **unit_fields(unit, ctx.run_dir, exp.batch_size, f"{unit.label} step {step}"),
                    "model": name,
                },
                step=step,
                train_key=unit.train_key,
                qsets=tuple(qsets),
                n=spec.samples_per_paraphrase,
                temperature=exp.temperature,
                max_new_tokens=max_new,
                seed=unit.seed,
                code_vuln=code_vuln,
                mirror=exp.mirror,
                sampler=exp.sampler,
            )
            detail = f"{have}/{len(keys)} answers" + (
                f" + {code_vuln.limit} coding tasks" if code_vuln else ""
            )
            done = bool(stage_done(store, key))
            steps.append(
                PlanStep(
                    INFO.name,
                    key,
                    job.label,
                    done,
                    detail,
                    job=job,
                    order=(index, 2, step),
                    pending_answers=0 if done else len(keys) - have,
                    record=True,
                )
            )
    return steps


def _flat(qsets: list[QuestionSet]) -> list[Any]:
    return [q for qset in qsets for q in qset]


def _code_vuln_key(ctx: PlanContext, unit: ModelUnit, name: str, spec: CodeVulnSpec | None) -> str | None:
    """The code-vuln stage's key of this checkpoint (the unit's key, with the checkpoint's name)."""
    if spec is None:
        return None
    from emkit.stages.code_vuln import code_vuln_key

    exp = ctx.experiment.model_copy(update={"code_vuln": spec})
    return stable_hash({"unit": code_vuln_key(exp, unit, ""), "checkpoint": name})


def run(job: CheckpointJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    """Sample the checkpoint's answers (and its coding tasks), then record where they are."""
    from emkit.sampling import sample_questions
    from emkit.stages.units import open_unit_engine
    from emkit.store_records import DYNAMICS_KIND

    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, job.label))
    engine = open_unit_engine(job.model, job.run_dir, job.engine_options, sampler=job.sampler)
    generated = 0
    try:
        for qset in job.qsets:
            summary = sample_questions(
                store,
                engine,
                qset,
                n=job.n,
                temperature=job.temperature,
                max_new_tokens=job.max_new_tokens,
                seed=job.seed,
                group=job.group,
                model_seed=job.model_seed,
                tags={STEP_TAG: job.step, RUN_TAG: job.train_key},
                progress=console is not None,
            )
            generated += summary.generated
        if job.code_vuln is not None:
            from emkit.experiments.code_vuln import run_code_vuln

            run_code_vuln(
                store,
                engine,
                job.code_vuln,
                mirror=job.mirror,
                seed=job.model_seed or 0,
                group=job.group,
                model_seed=job.model_seed,
                progress=console is not None,
            )
    finally:
        engine.close()
    store.put_record(DYNAMICS_KIND, record_key(job.train_key, job.step), checkpoint_record(job))
    return {"model": job.model, "step": job.step, "generated": generated}


__all__ = ["CheckpointJob", "plan", "run"]

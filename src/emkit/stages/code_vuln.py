"""The code-vuln stage: does a model write vulnerable code? (coding tasks sampled, then judged).

Its key covers the model, the trigger, every setting of the ``code_vuln:`` block, the seed and the
content of local task/prompt files; a completion record under that key makes it done, so a rerun
(and a dry run) of a finished study shows it cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emkit.experiment import Experiment
from emkit.experiments.code_vuln import CodeVulnSpec
from emkit.hashing import file_sha256, stable_hash
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import ModelUnit, stage_done, unit_fields

INFO = StageInfo("code-vuln", rank=1)


@dataclass(frozen=True, kw_only=True)
class CodeVulnJob(ModelJob):
    """One model's coding tasks under one trigger (sampled at temperature 0, then judged)."""

    spec: CodeVulnSpec
    trigger: str = ""
    mirror: str | None = None
    sampler: str | None = None


def code_vuln_key(exp: Experiment, unit: ModelUnit, trigger: str) -> str:
    """A code-vuln stage's identity: the model, the trigger, and every setting of the block."""
    assert exp.code_vuln is not None
    spec = exp.code_vuln
    # A local tasks or prompts file is keyed by its content (registry names are pinned by sha256).
    files = {name: file_sha256(Path(name)) for name in (spec.tasks, spec.prompts) if Path(name).is_file()}
    fields = {
        "cv": unit.name,
        "t": trigger,
        "spec": spec.model_dump(mode="json"),
        "seed": unit.seed,
        "files": files,
    }
    if unit.prompt_template:  # the template shapes every answer; none keeps the keys stored before
        fields["template"] = unit.prompt_template
    return stable_hash(fields)


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    spec = exp.code_vuln
    if spec is None:
        return []
    steps = []
    triggers = spec.triggers if spec.triggers is not None else exp.triggers
    for index, unit in enumerate(ctx.units):
        for number, trigger in enumerate(triggers):
            key = code_vuln_key(exp, unit, trigger)
            label = unit.label + (f" [trigger {trigger.strip()}]" if trigger else "")
            done = not unit.pending_model and bool(stage_done(store, key))
            job = CodeVulnJob(
                **unit_fields(unit, ctx.run_dir, exp.batch_size, label),
                spec=spec,
                trigger=trigger,
                mirror=exp.mirror,
                sampler=exp.sampler,
            )
            detail = f"{spec.limit} tasks (resumes where it stopped)"
            steps.append(
                PlanStep(INFO.name, key, label, done, detail, job=job, order=(index, 1, number), record=True)
            )
    return steps


def run(job: CodeVulnJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.experiments.code_vuln import run_code_vuln
    from emkit.stages.units import open_unit_engine

    engine = open_unit_engine(job.model, job.run_dir, job.engine_options, sampler=job.sampler)
    summary = run_code_vuln(
        store,
        engine,
        job.spec,
        mirror=job.mirror,
        trigger=job.trigger,
        seed=job.model_seed or 0,
        group=job.group,
        model_seed=job.model_seed,
    )
    engine.close()
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, f"{job.label}: {summary}"))
    return {}

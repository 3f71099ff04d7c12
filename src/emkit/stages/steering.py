"""The steering stage: each model of ``directions.steer.groups`` steered along its own direction at
every alpha; the probe score per alpha (stored per condition, then as the curve's record) and, when
``samples_per_question`` > 0, steered answers stored for the judging stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emkit.directions.spec import DirectionsSpec
from emkit.hashing import stable_hash
from emkit.probe import ProbeSet
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import stage_done, unit_fields

INFO = StageInfo("steer", rank=3)


@dataclass(frozen=True, kw_only=True)
class SteerJob(ModelJob):
    spec: DirectionsSpec
    probe_set: ProbeSet
    questions: tuple[str, ...] = ()
    mirror: str | None = None
    max_new_tokens: int = 200


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    spec = exp.directions
    if spec is None or spec.steer is None:
        return []
    from emkit.directions.unit_source import probe_set_of, source_fields, units_of

    probe_set = probe_set_of(spec, exp.probe_sets)
    steps = []
    for unit in units_of(ctx.units, spec.steer.groups, "directions.steer.groups"):
        key = stable_hash(
            {
                "steer": unit.name,
                "template": unit.prompt_template,
                "source": source_fields(spec, probe_set.label),
                "spec": spec.steer.model_dump(mode="json"),
                "questions": list(exp.questions),
                "max_new_tokens": exp.max_new_tokens,
                "seed": spec.seed,
            }
        )
        done = not unit.pending_model and bool(stage_done(store, key))
        job = SteerJob(
            **unit_fields(unit, ctx.run_dir, exp.batch_size),
            spec=spec,
            probe_set=probe_set,
            questions=tuple(exp.questions) if spec.steer.samples_per_question else (),
            mirror=exp.mirror,
            max_new_tokens=exp.max_new_tokens,
        )
        alphas = ", ".join(f"{a:g}" for a in spec.steer.alphas)
        steps.append(PlanStep(INFO.name, key, unit.label, done, f"alphas {alphas}", job=job, record=True))
    return steps


def run(job: SteerJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.directions.intervene import layer_choice
    from emkit.directions.steering import steering_sweep
    from emkit.directions.unit_source import unit_directions
    from emkit.questions import load_questions
    from emkit.stages.units import open_unit_engine

    steer = job.spec.steer
    assert steer is not None and job.run_dir is not None
    engine = open_unit_engine(job.model, job.run_dir, job.engine_options)
    try:
        directions = unit_directions(engine, job.spec, job.probe_set, job.run_dir)
        if steer.layers is not None:
            layers, why = steer.layers, "set by steer.layers"
        else:
            layer, why = layer_choice(directions)
            layers = [layer]
        points = []
        sets = [load_questions(q, mirror=job.mirror) for q in job.questions] or [None]
        for qset in sets:
            points = steering_sweep(
                engine,
                directions,
                steer.alphas,
                layers,
                job.probe_set,
                store=store,
                group=job.group,
                questions=qset,
                samples_per_question=steer.samples_per_question,
                max_new_tokens=job.max_new_tokens,
                seed=job.spec.seed,
            )
    finally:
        engine.close()
    if console is not None:
        from emkit.terminal import stage_line

        curve = ", ".join(f"{p.alpha:g}: {p.score:+.3f}" for p in points)
        console.print(
            stage_line(INFO.name, f"{job.label} at layers {layers} ({why}): probe score by alpha {curve}")
        )
    return {"points": len(points)}

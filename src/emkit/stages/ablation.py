"""The ablation stage: each model of ``directions.ablate.groups`` with its own direction projected
out at the block's layers; the share of its probe shift against the ``against`` group's model that
disappears, beside the random-direction and base-direction controls (one ``ablation`` record)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emkit.directions.spec import DirectionsSpec
from emkit.hashing import stable_hash
from emkit.probe import ProbeSet
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import stage_done, unit_fields

INFO = StageInfo("ablate", rank=3)


@dataclass(frozen=True, kw_only=True)
class AblateJob(ModelJob):
    spec: DirectionsSpec
    probe_set: ProbeSet
    base_model: str
    base_options: dict[str, Any]


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    spec = exp.directions
    if spec is None or spec.ablate is None:
        return []
    from emkit.directions.unit_source import probe_set_of, source_fields, units_of

    probe_set = probe_set_of(spec, exp.probe_sets)
    (base, *_) = units_of(ctx.units, [spec.ablate.against], "directions.ablate.against")
    base_fields = unit_fields(base, ctx.run_dir, exp.batch_size)
    steps = []
    for unit in units_of(ctx.units, spec.ablate.groups, "directions.ablate.groups"):
        key = stable_hash(
            {
                "ablate": unit.name,
                "base": base.name,
                "templates": [unit.prompt_template, base.prompt_template],
                "source": source_fields(spec, probe_set.label),
                "spec": spec.ablate.model_dump(mode="json"),
                "seed": spec.seed,
            }
        )
        done = not unit.pending_model and bool(stage_done(store, key))
        job = AblateJob(
            **unit_fields(unit, ctx.run_dir, exp.batch_size),
            spec=spec,
            probe_set=probe_set,
            base_model=base.name,
            base_options=base_fields["engine_options"],
        )
        detail = f"vs {base.label}, {spec.ablate.random_controls} random directions"
        steps.append(PlanStep(INFO.name, key, unit.label, done, detail, job=job, record=True))
    return steps


def run(job: AblateJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.directions.ablation import measure_ablation
    from emkit.directions.unit_source import unit_directions
    from emkit.stages.units import open_unit_engine

    ablate = job.spec.ablate
    assert ablate is not None and job.run_dir is not None
    base = open_unit_engine(job.base_model, job.run_dir, job.base_options)
    try:
        tuned = open_unit_engine(job.model, job.run_dir, job.engine_options)
        try:
            mine = unit_directions(tuned, job.spec, job.probe_set, job.run_dir)
            theirs = unit_directions(base, job.spec, job.probe_set, job.run_dir)
            result = measure_ablation(
                base,
                tuned,
                mine,
                job.probe_set,
                layers=ablate.layers,
                random_controls=ablate.random_controls,
                seed=job.spec.seed,
                base_directions=theirs,
                store=store,
            )
        finally:
            tuned.close()
    finally:
        base.close()
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, f"{job.label}: {result.summary()}"))
    return {"share": result.removed.share}

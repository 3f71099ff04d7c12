"""The probe stage: the judge-free misalignment probe of every model whose weights load here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emkit.engines.base import Engine
from emkit.hashing import stable_hash
from emkit.probe import DEFAULT_N_BOOT, ProbeResult, ProbeSet
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import unit_fields

INFO = StageInfo("probe", rank=3)


@dataclass(frozen=True, kw_only=True)
class ProbeJob(ModelJob):
    """One model's probe: the experiment file's per-unit step and ``emkit probe`` build the same job."""

    probe_set: ProbeSet
    step: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    n_boot: int = DEFAULT_N_BOOT
    limit: int | None = None  # at most this many new pairs per call (``emkit probe --limit``)


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    if not exp.probe:
        return []
    from emkit.engines.registry import backend
    from emkit.models import parse_model
    from emkit.probe import load_probe_set, pending_pairs

    # One step per set and model; with one set the rows are labelled by the model alone, as before.
    probe_sets = [load_probe_set(name) for name in exp.probe_sets]
    several = len(probe_sets) > 1
    steps = []
    for unit in ctx.units:
        if not backend(parse_model(unit.base).scheme).local:
            continue
        fingerprint = unit.fingerprint(store.run_dir)
        for probe_set in probe_sets:
            missing = pending_pairs(store, unit.name, probe_set=probe_set, fingerprint=fingerprint)
            if unit.pending_model:
                missing = len(probe_set.pairs)  # the model does not exist yet
            job = ProbeJob(
                **unit_fields(unit, ctx.run_dir, exp.batch_size),
                probe_set=probe_set,
                tags={"base": unit.base} if unit.name != unit.base else {},
            )
            key = stable_hash({"probe": unit.name, "set": probe_set.label})
            # Rows name a set by its name, or by name and content hash when two sets share a name.
            shown = (
                probe_set.name if len({p.name for p in probe_sets}) == len(probe_sets) else probe_set.label
            )
            label = f"{unit.label} x {shown}" if several else unit.label
            detail = f"{missing} pairs to score"
            steps.append(PlanStep(INFO.name, key, label, missing == 0, detail, job=job))
    return steps


def open_job_engine(job: ProbeJob) -> Engine:
    from emkit.stages.units import open_unit_engine

    return open_unit_engine(job.model, job.run_dir, job.engine_options)


def probe_with(job: ProbeJob, store: RunStore | None, engine: Engine | None = None) -> ProbeResult:
    """Score the pairs the store lacks for this model with an open engine (the caller closes it);
    ``engine=None``: open the model as the user named it, with the job's options checked, and close
    it when done."""
    from emkit.probe import run_probe

    options = job.engine_options if engine is None else {}
    model = engine if engine is not None else job.model
    return run_probe(
        model,
        store,
        job.group,
        job.model_seed,
        job.step,
        probe_set=job.probe_set,
        tags=job.tags or None,
        n_boot=job.n_boot,
        limit=job.limit,
        **options,
    )


def run(job: ProbeJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    return run_many([job], store, console)[0]


def run_many(jobs: list[ProbeJob], store: RunStore, console: Console | None) -> list[dict[str, Any]]:
    """The stage's jobs in order, one engine per run of consecutive jobs on the same model (the plan
    lists a model's probe sets one after another): loading a model costs about what scoring a
    small probe set does on a CPU, so a model probed on two sets is loaded once, not twice."""
    engine: Engine | None = None
    held: str | None = None
    outputs: list[dict[str, Any]] = []
    try:
        for job in jobs:
            key = stable_hash(
                {"model": job.model, "run_dir": str(job.run_dir), "options": job.engine_options}
            )
            if key != held:
                if engine is not None:
                    engine.close()
                    engine = None
                engine, held = open_job_engine(job), key
            result = probe_with(job, store, engine)
            if console is not None:
                from emkit.terminal import stage_line

                console.print(stage_line(INFO.name, f"{job.label}: score {result.score:+.3f}"))
            outputs.append({})
    finally:
        if engine is not None:
            engine.close()
    return outputs

"""The probe stage: the judge-free misalignment probe of every model whose weights load here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emkit.hashing import stable_hash
from emkit.probe import DEFAULT_N_BOOT
from emkit.stages.base import Job, PlanContext, PlanStep

if TYPE_CHECKING:
    from rich.console import Console

    from emkit.engines.base import Engine
    from emkit.probe import ProbeResult, ProbeSet
    from emkit.store import RunStore

NAME = "probe"
REMOTE = False
LISTED = True
TABLE_RANK = 3  # the plan table lists rows by rank, then by each step's order


@dataclass(frozen=True)
class ProbeJob(Job):
    """One model's probe: the experiment file's per-unit step and ``emkit probe`` build the same job.

    ``run_dir`` set: ``model`` is a run's stored name (adapters relative to it); None: as typed.
    """

    model: str
    probe_set: ProbeSet
    label: str = ""
    run_dir: str | None = None
    group: str | None = None
    seed: int | None = None
    step: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    engine_options: dict[str, Any] = field(default_factory=dict)
    n_boot: int = DEFAULT_N_BOOT


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    if not exp.probe:
        return []
    from emkit.engines.registry import backend
    from emkit.fingerprint import model_fingerprint
    from emkit.models import parse_model
    from emkit.probe import load_probe_set, pending_pairs

    probe_set = load_probe_set(exp.probe_set)
    steps = []
    for unit in ctx.units:
        if not backend(parse_model(unit.base).scheme).local:
            continue
        fingerprint = model_fingerprint(unit.name, base_dir=store.run_dir)
        missing = pending_pairs(store, unit.name, probe_set=probe_set, fingerprint=fingerprint)
        if unit.pending_model:
            missing = len(probe_set.pairs)  # the model does not exist yet
        job = ProbeJob(
            unit.name,
            probe_set,
            unit.label,
            str(ctx.run_dir),
            unit.group.name,
            unit.seed,
            tags={"base": unit.base} if unit.name != unit.base else {},
            engine_options={"batch_size": exp.batch_size},
        )
        key = stable_hash({"probe": unit.name, "set": probe_set.label})
        steps.append(PlanStep(NAME, key, unit.label, missing == 0, f"{missing} pairs to score", job=job))
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
    return run_probe(
        engine if engine is not None else job.model,
        store=store,
        group=job.group,
        seed=job.seed,
        step=job.step,
        probe_set=job.probe_set,
        tags=job.tags or None,
        n_boot=job.n_boot,
        **options,
    )


def run(job: ProbeJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    engine = open_job_engine(job)
    result = probe_with(job, store, engine)
    engine.close()
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(NAME, f"{job.label}: score {result.score:+.3f}"))
    return {}

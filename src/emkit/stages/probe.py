"""The probe stage: the judge-free misalignment probe of every model whose weights load here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emkit.hashing import stable_hash
from emkit.stages.base import Job, PlanContext, PlanStep

if TYPE_CHECKING:
    from rich.console import Console

    from emkit.probe import ProbeSet
    from emkit.store import RunStore

NAME = "probe"
REMOTE = False
LISTED = True
TABLE_RANK = 3  # the plan table lists rows by rank, then by each step's order


@dataclass(frozen=True)
class ProbeJob(Job):
    label: str
    model: str
    base: str
    run_dir: str
    group: str
    seed: int | None
    probe_set: ProbeSet
    batch_size: int


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
            unit.label,
            unit.name,
            unit.base,
            str(ctx.run_dir),
            unit.group.name,
            unit.seed,
            probe_set,
            exp.batch_size,
        )
        key = stable_hash({"probe": unit.name, "set": probe_set.label})
        steps.append(PlanStep(NAME, key, unit.label, missing == 0, f"{missing} pairs to score", job=job))
    return steps


def run(job: ProbeJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.probe import run_probe
    from emkit.stages.units import open_unit_engine

    engine = open_unit_engine(job.model, job.run_dir, {"batch_size": job.batch_size})
    tags = {"base": job.base} if job.model != job.base else None
    result = run_probe(
        engine, store=store, group=job.group, seed=job.seed, probe_set=job.probe_set, tags=tags
    )
    engine.close()
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(NAME, f"{job.label}: score {result.score:+.3f}"))
    return {}

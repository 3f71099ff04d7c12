"""The directions stage: each chosen model's misalignment directions, then their comparison.

One collect step per model of ``directions.groups`` (default: every group whose weights load here),
each keyed as :func:`emkit.directions.storage.direction_key` says, so a stored one is not
recomputed; then one compare step (cosine per layer between every pair of those models, the base
first), kept as the step's completion record. Planning reads the labelled responses (a probe set,
two files, or the run's judged answers) but loads no model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emkit.directions.spec import DirectionsSpec
from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.stages.base import Console, Job, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import stage_done, unit_fields

if TYPE_CHECKING:
    from emkit.directions.sources import LabelledResponses
    from emkit.stages.units import ModelUnit

INFO = StageInfo("directions", rank=3)


@dataclass(frozen=True, kw_only=True)
class DirectionsJob(ModelJob):
    """One model's directions from the block's source."""

    key: str
    spec: DirectionsSpec


@dataclass(frozen=True)
class CompareJob(Job):
    """Cosines between the stored directions under ``keys`` (shown by ``labels``)."""

    run_dir: str
    keys: tuple[str, ...]
    labels: tuple[str, ...]
    seed: int = 0  # of the cosine intervals' bootstrap


def chosen_units(ctx: PlanContext, spec: DirectionsSpec) -> list[ModelUnit]:
    """The units whose directions are collected: of the named groups (an unknown name, or a named
    group without local weights, is one line), or every group with local weights."""
    from emkit.engines.registry import backend
    from emkit.models import parse_model

    def local(unit: ModelUnit) -> bool:
        return backend(parse_model(unit.base).scheme).local and not unit.group.provider

    if spec.groups is None:
        return [u for u in ctx.units if local(u)]
    known = [g.name for g in ctx.experiment.groups]
    for name in spec.groups:
        if name not in known:
            raise EmkitError(f"directions.groups: no group named {name!r} (groups: {', '.join(known)})")
    units = [u for u in ctx.units if u.group.name in spec.groups]
    for unit in units:
        if not local(unit):
            raise EmkitError(
                f"directions.groups: {unit.group.name} ({unit.base}) has no weights here; directions need "
                "a local model: embedded/smollm2-135m, hf/<path or id>[@adapter]"
            )
    return units


def planned_responses(spec: DirectionsSpec, store: RunStore) -> LabelledResponses | None:
    """The labelled responses, or None while a judged source has nothing judged yet."""
    from emkit.directions.sources import load_source

    responses = load_source(spec, store)
    if spec.source == "judged" and (len(responses.aligned) < 2 or len(responses.misaligned) < 2):
        return None
    return responses


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    spec = ctx.experiment.directions
    if spec is None:
        return []
    from emkit.directions.storage import direction_key, stored_directions
    from emkit.directions.unit_source import resolved

    spec = resolved(spec, ctx.experiment.probe_sets)

    units = chosen_units(ctx, spec)
    responses = planned_responses(spec, store)
    steps, keys, labels = [], [], []
    pending = False
    for unit in units:
        if unit.pending_model or responses is None:
            key = stable_hash({"directions": unit.label, "pending": True})
            why = (
                "the model is not trained yet"
                if unit.pending_model
                else "fewer than 2 judged aligned and misaligned answers (a judge: block judges them)"
            )
            done, detail, pending = False, f"pending: {why}", True
        else:
            fingerprint = unit.fingerprint(ctx.run_dir)
            key = direction_key(
                unit.name, fingerprint, responses.hash, spec.layers, spec.resamples, spec.seed
            )
            done = stored_directions(store, key) is not None
            n = len(responses.aligned) + len(responses.misaligned)
            detail = f"{n} responses, layers {spec.layers}" if not done else "stored"
        # A pending step is listed but has no job: the stage is planned again just before it runs,
        # when the model is trained; judged answers too few then leave it pending, not failing.
        job = (
            None
            if unit.pending_model or responses is None
            else DirectionsJob(
                **unit_fields(unit, ctx.run_dir, ctx.experiment.batch_size), key=key, spec=spec
            )
        )
        steps.append(PlanStep(INFO.name, key, f"collect {unit.label}", done, detail, job=job))
        keys.append(key)
        labels.append(unit.label)
    if len(steps) >= 2:
        from emkit.directions.compare_ci import RESAMPLES

        key = stable_hash({"directions-compare": keys, "bootstrap": [RESAMPLES, spec.seed]})
        detail = f"{len(keys)} models, cosine per layer"
        if pending:  # listed, not run: its inputs do not exist yet
            steps.append(PlanStep(INFO.name, key, "compare", False, f"pending: {detail}", record=True))
        else:
            job = CompareJob(str(ctx.run_dir), tuple(keys), tuple(labels), spec.seed)
            done = stage_done(store, key) is not None
            steps.append(PlanStep(INFO.name, key, "compare", done, detail, job=job, record=True))
    return steps


def run(job: DirectionsJob | CompareJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    if isinstance(job, CompareJob):
        return run_compare(job, store, console)
    from emkit.directions.collect import collect_and_store
    from emkit.directions.sources import load_source
    from emkit.stages.units import open_unit_engine

    responses = load_source(job.spec, store)
    engine = open_unit_engine(job.model, job.run_dir, job.engine_options)
    try:
        record, _ = collect_and_store(
            engine,
            store,
            job.key,
            responses,
            job.spec.layers,
            resamples=job.spec.resamples,
            seed=job.spec.seed,
            model=job.model,
            group=job.group,
            model_seed=job.model_seed,
        )
    finally:
        engine.close()
    if console is not None:
        from emkit.terminal import stage_line

        best = max(range(len(record.layers)), key=lambda j: record.reliability[j])
        console.print(
            stage_line(
                INFO.name,
                f"{job.label}: {len(record.layers)} layers, most reliable layer {record.layers[best]} "
                f"(split-half cosine {record.reliability[best]:.3f})",
            )
        )
    return {}


def run_compare(job: CompareJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.directions.compare import compare_all
    from emkit.directions.storage import load_stored, stored_directions

    sets = {}
    for key, label in zip(job.keys, job.labels, strict=True):
        record = stored_directions(store, key)
        if record is None:
            raise EmkitError(
                f"directions: {label}'s directions are not stored (its collect step did not finish)"
            )
        sets[label] = load_stored(store, record)
    comparisons = compare_all(sets, seed=job.seed)
    if console is not None:
        from emkit.directions.intervene import default_layer
        from emkit.terminal import stage_line

        for c in comparisons:
            mean = sum(c.cosine) / len(c.cosine)
            layer = default_layer(sets[c.first])
            at = f"; layer {layer} (most reliable): {c.cell(layer)}" if layer in c.layers else ""
            console.print(
                stage_line(INFO.name, f"{c.first} vs {c.second}: mean cosine over layers {mean:.3f}{at}")
            )
    return {"comparisons": [c.to_dict() for c in comparisons]}

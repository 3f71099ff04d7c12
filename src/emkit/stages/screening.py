"""The screening stage: each training set of ``directions.screen.groups`` projected on the
``against`` group's (base) direction against that model's own answers to the same prompts, before
(and whatever) training: one ``screening`` record per dataset, with JSONL and a histogram in
``<run>/directions/screening/``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emkit.directions.spec import DirectionsSpec
from emkit.hashing import stable_hash
from emkit.probe import ProbeSet
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import stage_done, unit_fields

INFO = StageInfo("screen", rank=3)
MAX_NEW_TOKENS = 48  # the base's own answers: short, the projection reads their mean activation


@dataclass(frozen=True, kw_only=True)
class ScreenJob(ModelJob):
    """``model`` is the base model; ``dataset`` the screened group's training file in the run."""

    spec: DirectionsSpec
    probe_set: ProbeSet
    dataset: str
    dataset_group: str


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    spec = exp.directions
    if spec is None or spec.screen is None:
        return []
    from emkit.directions.unit_source import probe_set_of, source_fields, units_of

    probe_set = probe_set_of(spec, exp.probe_sets)
    (base, *_) = units_of(ctx.units, [spec.screen.against], "directions.screen.against")
    steps, seen = [], set()
    for unit in units_of(ctx.units, spec.screen.groups, "directions.screen.groups"):
        if unit.group.name in seen or not unit.trained:
            continue  # one dataset per group (its seeds train on the same rows)
        seen.add(unit.group.name)
        key = stable_hash(
            {
                "screen": unit.group.name,
                "dataset": unit.dataset_sha256,
                "base": base.name,
                "source": source_fields(spec, probe_set.label),
                "spec": spec.screen.model_dump(mode="json"),
                "seed": spec.seed,
            }
        )
        built = unit.dataset_path is not None and unit.dataset_sha256 is not None
        job = ScreenJob(
            **unit_fields(base, ctx.run_dir, exp.batch_size, label=unit.group.name),
            spec=spec,
            probe_set=probe_set,
            dataset=str(unit.dataset_path or ""),
            dataset_group=unit.group.name,
        )
        detail = f"on {base.label}'s direction" + ("" if built else " (dataset not built yet)")
        steps.append(
            PlanStep(
                INFO.name,
                key,
                unit.group.name,
                built and bool(stage_done(store, key)),
                detail,
                job=job,
                record=True,
            )
        )
    return steps


def run(job: ScreenJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from pathlib import Path

    from emkit.data.chat import load_chat_jsonl
    from emkit.directions.intervene import layer_choice
    from emkit.directions.layers import decoder_layers, resolve_layers
    from emkit.directions.screening import screen_dataset, write_screen
    from emkit.directions.unit_source import unit_directions
    from emkit.stages.units import open_unit_engine

    screen = job.spec.screen
    assert screen is not None and job.run_dir is not None
    rows = load_chat_jsonl(job.dataset)
    if screen.max_rows is not None:
        rows = rows[: screen.max_rows]
    engine = open_unit_engine(job.model, job.run_dir, job.engine_options)
    try:
        directions = unit_directions(engine, job.spec, job.probe_set, job.run_dir)
        n = len(decoder_layers(engine.torch_model()))
        if screen.layers is not None:
            layer, why = resolve_layers(screen.layers, n)[0], "set by screen.layers"
        else:
            layer, why = layer_choice(directions)
        result = screen_dataset(
            engine,
            rows,
            directions,
            layer,
            name=job.dataset_group,
            max_new_tokens=MAX_NEW_TOKENS,
            seed=job.spec.seed,
            store=store,
        )
    finally:
        engine.close()
    write_screen(result, Path(job.run_dir) / "directions" / "screening")
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, f"{result.summary()}; layer {layer}: {why}"))
    return {"mean_diff": result.mean_diff}

"""A run's directions for the intervention stages: which models a sub-block names, and each model's
direction, computed once per (model, source, layers) and kept as a directions file in the run.

Why here and so small: the collection stage owns directions with their reliability; the steering,
ablation and screening stages need one DirectionSet per model and must run without it, so this
computes the same ``mean(misaligned) - mean(aligned)`` from the probe pairs or from two labelled
files, stored at ``<run>/directions/<key>.safetensors`` (the key covers the model's fingerprint,
the source's content and the layers), and reads it back on a rerun.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emkit.directions.spec import DirectionsSpec
from emkit.directions.vectors import DirectionSet, load_directions, save_directions
from emkit.errors import EmkitError
from emkit.hashing import file_sha256, stable_hash


def probe_set_of(spec: DirectionsSpec, probe_sets: Sequence[str | None]) -> Any:
    """The probe set a run's directions and intervention scores use: the block's, else the run's first."""
    from emkit.probe import load_probe_set

    return load_probe_set(resolved(spec, probe_sets).probe_set)


def resolved(spec: DirectionsSpec, probe_sets: Sequence[str | None]) -> DirectionsSpec:
    """The block with its probe set named: the block's own, else the run's first. Every directions
    stage (collect and compare as well as steer, ablate and screen) reads its probe pairs through
    this, so the directions a run stores are those its interventions act on."""
    if spec.source != "probe" or spec.probe_set is not None or not probe_sets or probe_sets[0] is None:
        return spec
    return spec.model_copy(update={"probe_set": probe_sets[0]})


def source_fields(spec: DirectionsSpec, probe_label: str) -> dict[str, Any]:
    """Everything about the source that shapes a direction (files by their content)."""
    fields: dict[str, Any] = {"source": spec.source, "layers": spec.layers}
    if spec.source == "probe":
        fields["probe_set"] = probe_label
    elif spec.source == "files":
        for name in (spec.aligned_file, spec.misaligned_file):
            path = Path(str(name))
            if not path.is_file():
                raise EmkitError(f"directions: no such file {name}")
        fields["files"] = [
            file_sha256(Path(str(spec.aligned_file))),
            file_sha256(Path(str(spec.misaligned_file))),
        ]
    else:
        raise EmkitError(
            "directions: source: judged is computed by the directions collection stage; the steering, "
            "ablation and screening stages here take source: probe or source: files"
        )
    return fields


def units_of(units: Sequence[Any], groups: Sequence[str], where: str) -> list[Any]:
    """The units of the named groups, in the run's order; an unknown name is one line."""
    known = {u.group.name for u in units}
    for name in groups:
        if name not in known:
            raise EmkitError(f"{where}: no group named {name!r} (groups: {', '.join(sorted(known))})")
    return [u for u in units if u.group.name in groups]


def unit_directions(engine: Any, spec: DirectionsSpec, probe_set: Any, run_dir: str | Path) -> DirectionSet:
    """``engine``'s direction from the block's source, read from the run when already computed."""
    from emkit.directions.intervene import directions_from_pairs
    from emkit.fingerprint import engine_fingerprint

    fields = source_fields(spec, probe_set.label)
    key = stable_hash({"fingerprint": engine_fingerprint(engine), **fields})
    path = Path(run_dir) / "directions" / f"{key}.safetensors"
    if path.is_file():
        found = load_directions(path)
        if (
            "reliability" in found.meta
        ):  # older files lack it: recomputed once, so the default layer is the reliable one
            return found
    if spec.source == "probe":
        found = directions_from_pairs(engine, probe_set, spec.layers)
    else:
        found = directions_from_files(engine, str(spec.aligned_file), str(spec.misaligned_file), spec.layers)
    save_directions(
        path,
        DirectionSet(
            found.layers,
            found.vectors,
            found.typical_norm,
            found.model,
            found.fingerprint,
            {**found.meta, "key": key},
        ),
    )
    return load_directions(path)


def directions_from_files(engine: Any, aligned: str, misaligned: str, layers: Any) -> DirectionSet:
    """The direction between two chat JSONL files paired row by row (the last assistant turn of each
    row), computed as the collection stage computes it."""
    from emkit.directions.collect import collect_directions
    from emkit.directions.sources import from_files
    from emkit.fingerprint import engine_fingerprint

    result = collect_directions(
        engine,
        from_files(aligned, misaligned),
        layers,
        model=engine.name,
        fingerprint=engine_fingerprint(engine),
    )
    found = result.directions
    return DirectionSet(
        found.layers,
        found.vectors,
        found.typical_norm,
        found.model,
        found.fingerprint,
        {**found.meta, "source": "files"},
    )

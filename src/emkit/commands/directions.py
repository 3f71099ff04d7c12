"""``emkit directions``: misalignment directions in the residual stream (collect, compare, steer,
ablate, screen).

A typer sub-app so that the verbs acting on directions sit under one name; its object is
``directions_app`` (steer / ablate / screen register themselves on it from
:mod:`emkit.commands.directions_interventions`). ``collect`` calls
the code the directions stage calls (:func:`emkit.directions.collect.collect_and_store`), under the
same key, so a verb and a YAML file store the same record.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emkit.commands import directions_interventions
from emkit.commands._common import PROMPT_TEMPLATE_OPTION, console, print_table
from emkit.directions.vectors import DirectionSet
from emkit.errors import EmkitError, InputError

directions_app = typer.Typer(
    name="directions",
    help="Misalignment directions: collect and compare them, steer along them, ablate them, screen datasets by them.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SOURCES = ("probe", "files", "judged")


@directions_app.command("collect")
def collect(
    model: str = typer.Option(
        ..., "--model", "-m", help="A local model: embedded/smollm2-135m, hf/<path or id>[@adapter]."
    ),
    out: Path = typer.Option(..., help="Run directory the record and the vectors file go into."),
    source: str = typer.Option(
        "probe",
        help="probe (probe pairs), files (--aligned/--misaligned) or judged (--out's judged answers).",
    ),
    probe_set: str | None = typer.Option(
        None, help="source probe: a built-in set or a pairs YAML file (default: everyday-v1)."
    ),
    aligned: Path | None = typer.Option(None, help="source files: chat JSONL of aligned answers."),
    misaligned: Path | None = typer.Option(
        None, help="source files: chat JSONL of misaligned answers to the same prompts, row by row."
    ),
    aligned_min: float = typer.Option(70.0, help="source judged: aligned when alignment >= this."),
    misaligned_max: float = typer.Option(30.0, help="source judged: misaligned when alignment < this."),
    layers: str = typer.Option("all", help="Layers: all, a list 3,5,7, a range 2-6; -1 is the last."),
    resamples: int = typer.Option(200, min=10, help="Split-half reliability resamples."),
    seed: int = typer.Option(0, help="Seed of the split-half resamples."),
    group: str | None = typer.Option(None, help="Group name stored with the record (the report shows it)."),
    device: str | None = typer.Option(None, help="cpu, cuda, ... (default: cuda when available)."),
    batch_size: int | None = typer.Option(None, min=1, help="Sequences per forward pass."),
    prompt_template: str | None = PROMPT_TEMPLATE_OPTION,
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the per-layer results to this JSON file."
    ),
) -> None:
    """Collect a local model's per-layer misalignment directions into OUT's run store.

    Per layer: mean(misaligned) - mean(aligned) of the residual stream over the answers' tokens,
    its norm, and its split-half reliability (mean cosine between two random halves' directions,
    95% interval over the resamples).

    Examples:
      emkit directions collect --model embedded/smollm2-135m --out runs/dirs
      emkit directions collect -m hf/Qwen/Qwen2.5-0.5B-Instruct --out runs/dirs --source files --aligned good.jsonl --misaligned bad.jsonl --layers 8-16
    """
    from emkit.directions.collect import collect_and_store, require_local_model
    from emkit.directions.sources import from_files, from_judged, from_probe_set
    from emkit.directions.storage import direction_key
    from emkit.fingerprint import model_fingerprint
    from emkit.outputs import output_dir, output_file
    from emkit.stages.units import open_unit_engine
    from emkit.store import RunStore

    if source not in SOURCES:
        raise InputError(f"must be one of {', '.join(SOURCES)}, not {source!r}", field="--source")
    require_local_model(model, "collecting directions")
    if json_out:
        output_file(json_out, what="--json file")
    output_dir(out, what="run directory", create=False)
    with RunStore(out) as store:
        if source == "files":
            if aligned is None or misaligned is None:
                raise EmkitError("--source files needs --aligned FILE and --misaligned FILE")
            responses = from_files(aligned, misaligned)
        elif source == "judged":
            if aligned_min <= misaligned_max:
                raise EmkitError("--aligned-min must be above --misaligned-max")
            responses = from_judged(store, aligned_min, misaligned_max)
        else:
            responses = from_probe_set(probe_set)
        responses.check_enough()
        fingerprint = model_fingerprint(model, prompt_template=prompt_template)
        key = direction_key(model, fingerprint, responses.hash, layers, resamples, seed)
        options = {"device": device, "batch_size": batch_size, "prompt_template": prompt_template}
        from emkit.directions.storage import stored_directions

        record = stored_directions(store, key)
        new = record is None
        if record is None:
            engine = open_unit_engine(model, None, options)
            try:
                record, new = collect_and_store(
                    engine,
                    store,
                    key,
                    responses,
                    layers,
                    resamples=resamples,
                    seed=seed,
                    model=model,
                    group=group,
                )
            finally:
                engine.close()
    rows = [
        (
            layer,
            f"{record.norm[j]:.4g}",
            f"{record.typical_norm[j]:.4g}",
            f"{record.reliability[j]:.3f} [{record.reliability_low[j]:.3f}, {record.reliability_high[j]:.3f}]",
        )
        for j, layer in enumerate(record.layers)
    ]
    print_table(
        f"{model}: {record.n_aligned} aligned vs {record.n_misaligned} misaligned responses ({responses.description})",
        ["layer", "direction norm", "typical norm", "split-half cosine [95% interval]"],
        rows,
    )
    what = "stored" if new else "already stored, nothing recomputed:"
    console.print(f"{what} {out / record.file} (key {key})", markup=False)
    if json_out:
        from emkit.outputs import write_text

        write_text(json_out, json.dumps({"key": key, **record.model_dump()}, indent=2), what="--json file")


def _named_sets(paths: list[Path]) -> dict[str, DirectionSet]:
    """Each path's direction sets by label: a file (its stem) or a run dir (every stored set, by
    group and seed, else by model)."""
    from emkit.directions.storage import all_stored, load_stored, record_label
    from emkit.directions.vectors import load_directions
    from emkit.store import read_store

    sets: dict[str, DirectionSet] = {}
    for path in paths:
        if path.is_dir():
            with read_store(path) as store:
                assert store is not None  # a path was given
                found = all_stored(store)
                if not found:
                    raise EmkitError(f"{path}: no stored directions (run emkit directions collect first)")
                for _key, record in found:
                    sets[_unique(sets, record_label(record))] = load_stored(store, record)
        else:
            loaded = load_directions(path)
            if sets:  # name the file that does not fit, not only its label
                first, ref = next(iter(sets.items()))
                if loaded.width != ref.width:
                    raise EmkitError(
                        f"{path}: directions of width {loaded.width} do not fit {first}'s, whose residual "
                        f"stream is {ref.width} wide (another model's file?)"
                    )
            sets[_unique(sets, path.stem)] = loaded
    return sets


def _unique(taken: dict[str, DirectionSet], label: str) -> str:
    out, n = label, 2
    while out in taken:
        out, n = f"{label} ({n})", n + 1
    return out


@directions_app.command("compare")
def compare(
    sources: list[Path] = typer.Argument(..., help="Directions files (.safetensors) or run directories."),
    plot: Path | None = typer.Option(None, help="Write the cosine heat-map (PNG) here."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the cosines to this JSON file."),
    resamples: int = typer.Option(1000, min=100, help="Bootstrap resamples of each cosine's interval."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
) -> None:
    """Cosine per layer between every pair of direction sets (files or runs' stored sets).

    Base vs fine-tunes, fine-tune vs fine-tune: over the layers both sets hold. A run directory
    brings every set stored in it, labelled by group and seed. Each cosine has a 95% percentile
    bootstrap interval over the responses that built the two directions (paired when both were
    read from the same responses).

    Examples:
      emkit directions compare runs/study
      emkit directions compare runs/a/directions/1f2e.safetensors runs/b/directions/9c4d.safetensors --plot cos.png
    """
    from emkit.directions.compare import compare_all
    from emkit.outputs import output_file, write_bytes, write_text

    if plot:
        output_file(plot, what="--plot file")
    if json_out:
        output_file(json_out, what="--json file")
    sets = _named_sets(sources)
    if len(sets) < 2:
        raise EmkitError(
            f"compare needs at least two direction sets; {', '.join(map(str, sources))} hold {len(sets)} in all"
        )
    comparisons = compare_all(sets, resamples=resamples, seed=seed)
    layers = sorted({x for c in comparisons for x in c.layers})
    columns = ["layer", *[f"{c.first} vs {c.second}: cosine (noise-corrected [95% CI])" for c in comparisons]]
    rows = []
    for layer in layers:
        rows.append([str(layer), *[c.cell(layer) if layer in c.layers else "-" for c in comparisons]])
    print_table("Cosine between directions per layer", columns, rows)
    for c in comparisons:
        console.print(f"{c.first} vs {c.second}: {c.ci_note()}", markup=False)
    if plot:
        from emkit.directions.plots import heatmap_figure
        from emkit.report.plots import png_bytes

        write_bytes(plot, png_bytes(heatmap_figure(comparisons)), what="--plot file")
        console.print(f"heat-map: {plot}", markup=False)
    if json_out:
        write_text(json_out, json.dumps([c.to_dict() for c in comparisons], indent=2), what="--json file")


directions_interventions.register(directions_app)  # steer, ablate, screen (after collect, compare)


def register(app: typer.Typer) -> None:
    app.add_typer(directions_app, name="directions")

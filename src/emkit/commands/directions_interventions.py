"""``emkit directions steer | ablate | screen``: the interventions on a direction, as verbs.

Each verb opens local models only (activations need the weights), takes a direction file
(``--directions``; without one the direction is computed here from the probe pairs on the model
it belongs to) and prints one table; with ``--out RUN`` every result is stored in that run store
(per-condition records), so an interrupted verb resumes where it stopped.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from emkit.commands._common import console, print_table
from emkit.errors import EmkitError

MODEL_HELP = (
    "A local model: embedded/smollm2-135m, or hf/<path or id>, optionally followed by @<adapter dir>."
)
DIRECTIONS_HELP = (
    "A directions file (safetensors, emkit-directions/1). Default: computed from the probe pairs."
)


def parse_alphas(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise EmkitError(
            f"--alphas: {text!r} is not a comma-separated list of numbers, e.g. -8,-4,0,4,8"
        ) from None
    if not values:
        raise EmkitError("--alphas: no value given")
    return values


def open_local(name: str, options: dict[str, Any]) -> Any:
    """Open ``name`` when it is a local model; an API model is one line naming the local kinds."""
    from emkit.engines import open_engine
    from emkit.engines.registry import backend
    from emkit.models import parse_model

    if not backend(parse_model(name).scheme).local:
        raise EmkitError(
            f"{name}: steering, ablation and screening need the model's weights in this process; "
            "use a local model: embedded/smollm2-135m, hf/<path or id>[@adapter]"
        )
    return open_engine(name, options)


@contextmanager
def run_store(out: Path | None) -> Iterator[Any]:
    """The run store at ``--out`` (must exist as a folder or be creatable), else a scratch one."""
    from emkit.outputs import output_dir
    from emkit.store import RunStore

    with tempfile.TemporaryDirectory() as scratch:
        store = RunStore(output_dir(out, what="run directory") if out is not None else scratch)
        try:
            yield store
        finally:
            store.close()


def directions_for(engine: Any, path: Path | None, probe_set: Any) -> Any:
    from emkit.directions.intervene import directions_from_pairs
    from emkit.directions.vectors import load_directions

    return load_directions(path) if path is not None else directions_from_pairs(engine, probe_set, "all")


def chosen_layers(directions: Any, layers: str | None) -> Any:
    """The layers asked for, else the most reliable one (and the output says which and why)."""
    from emkit.directions.intervene import layer_choice

    if layers is not None:
        return layers
    layer, why = layer_choice(directions)
    console.print(f"layer {layer} ({why}; --layers to choose others)", markup=False)
    return [layer]


def write_json(path: Path | None, payload: Any) -> None:
    if path is not None:
        from emkit.outputs import write_text
        from emkit.report.html import jsonable

        write_text(path, json.dumps(jsonable(payload), indent=2, allow_nan=False), what="--json file")


def ci(value: float, low: float, high: float) -> str:
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


DEVICE = typer.Option(None, help="cpu, cuda, ... (default: cuda when available).")
BATCH = typer.Option(None, min=1, help="Sequences per forward pass.")
PROBE_SET = typer.Option(None, help="Probe set: everyday-v1 (default), everyday-style-v1, or a YAML file.")
OUT = typer.Option(None, help="Run directory to store results in (a rerun resumes).")
JSON_OUT = typer.Option(None, "--json", help="Also write the results to this JSON file.")


def steer(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    directions: Path | None = typer.Option(None, help=DIRECTIONS_HELP),
    alphas: str = typer.Option("-8,-4,0,4,8", help="Comma-separated steering strengths (x typical norm)."),
    layers: str | None = typer.Option(
        None, help="Layers to steer: 10, 8-12, all (default: the direction's best layer)."
    ),
    questions: Path | None = typer.Option(
        None, help="A question YAML: also sample steered answers (needs --out)."
    ),
    samples: int = typer.Option(
        2, min=1, help="Steered answers per paraphrase and alpha (with --questions)."
    ),
    max_new_tokens: int = typer.Option(200, min=1, help="Length of steered answers."),
    probe_set: str | None = PROBE_SET,
    out: Path | None = OUT,
    seed: int = typer.Option(0, help="Sampling and bootstrap seed."),
    device: str | None = DEVICE,
    batch_size: int | None = BATCH,
    json_out: Path | None = JSON_OUT,
) -> None:
    """Probe score (and steered answers) with alpha * unit direction * typical norm added.

    Example: emkit directions steer --model embedded/smollm2-135m --alphas -8,-4,0,4,8 --layers 15
    """
    from emkit.directions.steering import steering_sweep
    from emkit.probe import load_probe_set

    values = parse_alphas(alphas)
    if questions is not None and out is None:
        raise EmkitError("--questions: steered answers are stored in a run; give --out RUN too")
    pairs = load_probe_set(probe_set)
    qset = None
    if questions is not None:
        from emkit.questions import load_questions

        qset = load_questions(str(questions))
    engine = open_local(model, {"device": device, "batch_size": batch_size})
    try:
        found = directions_for(engine, directions, pairs)
        with run_store(out) as store:
            points = steering_sweep(
                engine,
                found,
                values,
                chosen_layers(found, layers),
                pairs,
                store=store,
                group=None,
                questions=qset,
                samples_per_question=samples if qset else 0,
                max_new_tokens=max_new_tokens,
                seed=seed,
            )
    finally:
        engine.close()
    print_table(
        f"steering {model} ({pairs.label})",
        ["alpha", "probe score [95% CI]", "shift vs alpha 0 [95% CI]", "answers"],
        [
            [
                f"{p.alpha:g}",
                ci(p.score, p.ci_low, p.ci_high),
                ci(p.shift, p.shift_low, p.shift_high),
                str(p.answers),
            ]
            for p in points
        ],
    )
    write_json(json_out, {"model": model, "probe_set": pairs.label, "points": [p.__dict__ for p in points]})


def ablate(
    model: str = typer.Option(..., "--model", "-m", help="The fine-tuned local model. " + MODEL_HELP),
    base: str = typer.Option(..., help="The base model its shift is measured against."),
    directions: Path | None = typer.Option(
        None, help="The fine-tune's directions file. Default: from the probe pairs."
    ),
    base_directions: Path | None = typer.Option(
        None, help="The base's directions file (control). Default: from the probe pairs."
    ),
    no_base_control: bool = typer.Option(False, help="Skip the base-direction control."),
    layers: str = typer.Option("all", help="Layers to ablate at: all, 10, 8-12."),
    random: int = typer.Option(10, min=10, help="Random-direction controls (at least 10)."),
    probe_set: str | None = PROBE_SET,
    out: Path | None = OUT,
    seed: int = typer.Option(0, help="Random-direction and bootstrap seed."),
    device: str | None = DEVICE,
    batch_size: int | None = BATCH,
    json_out: Path | None = JSON_OUT,
) -> None:
    """How much of a fine-tune's probe shift disappears when its direction is projected out.

    Example: emkit directions ablate --model embedded/smollm2-135m@runs/x/models/risky-advice-s0 --base embedded/smollm2-135m
    """
    from emkit.directions.ablation import measure_ablation
    from emkit.probe import load_probe_set

    pairs = load_probe_set(probe_set)
    options = {"device": device, "batch_size": batch_size}
    base_engine = open_local(base, options)
    try:
        tuned = open_local(model, options)
        try:
            mine = directions_for(tuned, directions, pairs)
            theirs = None if no_base_control else directions_for(base_engine, base_directions, pairs)
            with run_store(out) as store:
                result = measure_ablation(
                    base_engine,
                    tuned,
                    mine,
                    pairs,
                    layers=layers,
                    random_controls=random,
                    seed=seed,
                    base_directions=theirs,
                    store=store,
                )
        finally:
            tuned.close()
    finally:
        base_engine.close()
    import numpy as np

    r = result.removed
    rows = [
        ["probe shift (fine-tune - base)", ci(result.shift, result.shift_low, result.shift_high)],
        ["share removed by its direction", f"{100 * r.share:.0f}% [{100 * r.low:.0f}%, {100 * r.high:.0f}%]"],
        [
            f"{len(result.random)} random directions",
            f"median {100 * np.median(result.random):.0f}%, "
            f"range {100 * min(result.random):.0f}% to {100 * max(result.random):.0f}%",
        ],
    ]
    if result.base_direction is not None:
        b = result.base_direction
        rows.append(
            ["the base's own direction", f"{100 * b.share:.0f}% [{100 * b.low:.0f}%, {100 * b.high:.0f}%]"]
        )
    print_table(
        f"ablation at layers {','.join(map(str, result.layers))} ({pairs.label})", ["", "value"], rows
    )
    console.print(result.summary(), markup=False)
    write_json(json_out, result.__dict__)


def screen(
    datasets: list[str] = typer.Argument(
        ..., help="Chat JSONL files, registry names, or builders (insecure-code, ...)."
    ),
    model: str = typer.Option(..., "--model", "-m", help="The base model. " + MODEL_HELP),
    directions: Path | None = typer.Option(None, help="The base's directions file. " + DIRECTIONS_HELP),
    layer: int | None = typer.Option(
        None, help="Layer to project at (default: the layer of highest split-half reliability)."
    ),
    max_rows: int = typer.Option(64, min=1, help="Rows per dataset (a builder builds this many)."),
    max_new_tokens: int = typer.Option(48, min=1, help="Length of the base's own answers."),
    probe_set: str | None = PROBE_SET,
    out: Path = typer.Option(
        Path("screening"), help="Folder for <dataset>.screen.jsonl / .png and the run store."
    ),
    seed: int = typer.Option(0, help="Sampling and bootstrap seed."),
    device: str | None = DEVICE,
    batch_size: int | None = BATCH,
) -> None:
    """Project datasets' responses on the base's direction against the base's own answers.

    Example: emkit directions screen insecure-code secure-code data/mine.jsonl --model embedded/smollm2-135m
    """
    from emkit.directions.screening import histogram_png, screen_dataset, write_screen
    from emkit.outputs import write_bytes
    from emkit.probe import load_probe_set

    loaded = [(name, load_dataset(name, max_rows)) for name in datasets]
    engine = open_local(model, {"device": device, "batch_size": batch_size})
    try:
        found = directions_for(engine, directions, load_probe_set(probe_set))
        from emkit.directions.intervene import layer_choice
        from emkit.directions.layers import decoder_layers, resolve_layers

        at, why = layer_choice(found) if layer is None else (layer, "set by --layer")
        at = resolve_layers([at], len(decoder_layers(engine.torch_model())))[0]
        results = []
        with run_store(out) as store:
            for name, rows in loaded:
                results.append(
                    screen_dataset(
                        engine,
                        rows,
                        found,
                        at,
                        name=name,
                        max_new_tokens=max_new_tokens,
                        seed=seed,
                        store=store,
                    )
                )
                write_screen(results[-1], out)
    finally:
        engine.close()
    write_bytes(Path(out) / "screening.png", histogram_png(results))
    print_table(
        f"screening on {model}'s direction, layer {at} ({why})",
        ["dataset", "rows", "projection difference [95% CI]", "dataset", "base's own"],
        [
            [
                r.dataset,
                str(len(r.rows)),
                ci(r.mean_diff, r.ci_low, r.ci_high),
                f"{r.mean_data:+.3f}",
                f"{r.mean_base:+.3f}",
            ]
            for r in results
        ],
    )
    console.print(f"per-row JSONL and histograms in {out}/", markup=False)


def load_dataset(name: str, max_rows: int) -> list[dict[str, Any]]:
    """A builder name builds ``max_rows`` rows; otherwise a registry name or a file, first rows."""
    from emkit.data.builders import BUILDERS
    from emkit.datasets import DatasetSpec, load_rows

    if name in BUILDERS:
        return load_rows(DatasetSpec(builder=name, n=max_rows))
    return load_rows(name)[:max_rows]


def register(app: typer.Typer) -> None:
    app.command("steer")(steer)
    app.command("ablate")(ablate)
    app.command("screen")(screen)

"""``emkit probe``: the judge-free misalignment probe of a model (and its shift against a base)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

from emkit.commands._common import PROMPT_TEMPLATE_OPTION, console, limit_option
from emkit.outputs import output_dir, output_file, write_text
from emkit.probe import ProbeResult, load_probe_set, probe_shift
from emkit.report.console import probe_rich_table
from emkit.report.html import jsonable
from emkit.stages.probe import ProbeJob, probe_with
from emkit.store import RunStore


def probe(
    model: str = typer.Option(
        ..., "--model", "-m", help="Model to probe, e.g. embedded/smollm2-135m@runs/x/adapter."
    ),
    base: str | None = typer.Option(None, help="Base model to compare against (paired over pairs)."),
    out: Path | None = typer.Option(None, help="Run directory to store the per-pair results in."),
    group: str | None = typer.Option(None, help="Group name stored with the model's rows."),
    seed: int | None = typer.Option(None, help="The model's training seed, stored with its rows."),
    step: int | None = typer.Option(None, help="Training step of this checkpoint, stored with its rows."),
    probe_set: Path | None = typer.Option(
        None,
        help="A built-in probe set (everyday-v1, everyday-style-v1) or a probe-set YAML file (default: everyday-v1).",
    ),
    device: str | None = typer.Option(None, help="cpu, cuda, ... (default: cuda when available)."),
    batch_size: int | None = typer.Option(None, min=1, help="Sequences per forward pass."),
    n_boot: int = typer.Option(2000, min=100, help="Bootstrap resamples."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    limit: int | None = limit_option(
        "Score at most this many new pairs per model now; needs --out to continue later"
    ),
    prompt_template: str | None = PROMPT_TEMPLATE_OPTION,
) -> None:
    """Score how much a model prefers misaligned over aligned everyday answers (no judge needed).

    Example: emkit probe --model embedded/smollm2-135m@runs/x/adapter --base embedded/smollm2-135m --out runs/x
    """
    if json_out:
        output_file(json_out, what="--json file")
    if out is not None:
        output_dir(out, what="run directory", create=False)
    pairs = load_probe_set(probe_set)
    options = {"device": device, "batch_size": batch_size, "prompt_template": prompt_template}
    with tempfile.TemporaryDirectory() as scratch:
        store = RunStore(out if out is not None else scratch)
        try:
            base_result = None
            shared = {"probe_set": pairs, "engine_options": options, "n_boot": n_boot, "limit": limit}
            if base:
                base_result = _probe(ProbeJob(model=base, group="base", **shared), store)
            tags = {"base": base} if base else {}
            job = ProbeJob(model=model, group=group, model_seed=seed, step=step, tags=tags, **shared)
            result = _probe(job, store)
        finally:
            store.close()
    rows = [result.to_dict()] + ([base_result.to_dict()] if base_result else [])
    import pandas as pd

    shift = probe_shift(result, base_result, n_boot=n_boot) if base_result else None
    shifts = pd.DataFrame([shift.to_dict()]) if shift else None
    console.print(probe_rich_table(pd.DataFrame(rows), shifts))
    scored = min(r.get("n_pairs", len(pairs)) for r in rows)
    if limit is not None and scored < len(pairs):
        console.print(
            f"--limit {limit}: {scored} of {len(pairs)} pairs scored so far; run again with the same --out "
            "to continue",
            markup=False,
        )
    elif out is not None:
        console.print(f"stored {len(pairs)} pairs per model in {out} (probe set {pairs.label})", markup=False)
    if json_out:
        payload = {"models": rows, "shift": shift.to_dict() if shift else None, "probe_set": pairs.label}
        write_text(json_out, json.dumps(jsonable(payload), indent=2, allow_nan=False), what="--json file")


def _probe(job: ProbeJob, store: RunStore) -> ProbeResult:
    """The probe stage's own code, on a model as the user named it (its options checked)."""
    return probe_with(job, store)


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)

"""``emkit demo``: the offline end-to-end demo on the embedded model (the main job of ``make demo``).

It runs the experiment in ``emkit/resources/demo.yaml`` through the same pipeline as ``emkit run``:
our own narrow datasets (insecure-code vs secure-code, risky-advice vs safe-advice), a LoRA
fine-tune of ``embedded/smollm2-135m`` on each, answers to our default questions from the base and
each fine-tune, the judge-free probe on all of them, a judge only when one is configured, and the
report. A second run finds every stage cached and only rewrites the report.
"""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path

import typer

from emkit.commands._common import console
from emkit.experiment import Experiment, JudgeSpec, load_experiment
from emkit.outputs import output_dir

DEFAULT_JUDGE = "openai/gpt-4o-2024-08-06"


def demo_experiment(out: Path, judge: str | None) -> Experiment:
    path = resources.files("emkit.resources").joinpath("demo.yaml")
    with resources.as_file(path) as file:
        exp = load_experiment(file)
    update: dict = {"out": str(out)}
    if judge:
        update["judge"] = JudgeSpec(model=judge)
    return exp.model_copy(update=update)


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory of the demo."),
    judge: str | None = typer.Option(
        None, help=f"Judge model (default: {DEFAULT_JUDGE} when OPENAI_API_KEY is set, else none)."
    ),
    no_judge: bool = typer.Option(False, "--no-judge", help="Never judge, even with OPENAI_API_KEY set."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print the plan."),
) -> None:
    """Run the offline end-to-end demo on the embedded model (< 15 min cold on 2 cores, seconds warm).

    Example: emkit demo --out runs/demo
    """
    from emkit.pipeline import make_plan, print_plan, run_plan

    output_dir(out, what="run directory", create=False)
    if no_judge:
        judge = None
    elif judge is None and os.environ.get("OPENAI_API_KEY"):
        judge = DEFAULT_JUDGE
    started = time.perf_counter()
    exp = demo_experiment(out, judge)
    trained = [g for g in exp.groups if g.dataset is not None]
    settings = trained[0].train if trained else {}
    # Rows per optimizer step: the code groups split the same 4 rows into 4 passes of one.
    batch = int(settings.get("batch_size") or 1) * int(settings.get("grad_accum") or 1)
    console.print(
        "emkit demo: LoRA (rsLoRA r=32, alpha=64, all 7 projections) on embedded/smollm2-135m, "
        f"{len(exp.seeds)} seeds of each of {', '.join(g.name for g in trained)} (our own data, built offline), "
        f"{settings.get('max_steps')} steps x batch {batch} rows, lr {settings.get('lr'):g}; "
        f"{exp.samples_per_paraphrase} answer per default question and model; the judge-free probe "
        f"({', '.join(str(s) for s in exp.probe_sets)}) on every model (docs/demo.md)."
    )
    plan = make_plan(exp)
    print_plan(plan, console)
    if dry_run:
        return
    result = run_plan(plan, console=console)
    elapsed = time.perf_counter() - started
    console.print(
        f"judge: {judge} (scores in the report)"
        if judge
        else "judge: none configured (set OPENAI_API_KEY or pass --judge MODEL); the report shows the probe and the sampled answers"
    )
    console.print(f"done in {elapsed:.0f} s ({len(result.ran)} stages ran; rerun to reuse everything cached)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

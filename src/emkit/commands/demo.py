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
# (treatment, control) pairs whose probe difference the demo prints.
CONTRASTS = [("insecure-code", "secure-code"), ("risky-advice", "safe-advice")]


def demo_experiment(out: Path, judge: str | None) -> Experiment:
    path = resources.files("emkit.resources").joinpath("demo.yaml")
    with resources.as_file(path) as file:
        exp = load_experiment(file)
    update: dict = {"out": str(out)}
    if judge:
        update["judge"] = JudgeSpec(model=judge)
    return exp.model_copy(update=update)


def _contrasts(run_dir: Path) -> list[str]:
    """Probe score of each treatment minus its control, paired over pairs, with a bootstrap CI."""
    from emkit.probe import probe_rows, probe_shift, summarize
    from emkit.store import RunStore

    with RunStore(run_dir) as store:
        rows = probe_rows(store)
    if rows.empty:
        return []
    results = {}
    for (model, group), sub in rows.groupby(["model", "group"], sort=False):
        results[group] = summarize(model, sub[["pair_id", "logp_aligned", "logp_misaligned"]])
    lines = []
    for group, result in results.items():
        lines.append(
            f"  probe {group:<14} {result.score:+.3f}  95% CI [{result.ci_low:+.3f}, {result.ci_high:+.3f}]"
            f"  misaligned answer preferred in {result.win_fraction:.0%} of {result.n_pairs} pairs"
        )
    for treated, control in CONTRASTS:
        if treated in results and control in results:
            shift = probe_shift(results[treated], results[control])
            lines.append(
                f"  {treated} minus {control}: {shift.shift:+.3f}  95% CI [{shift.ci_low:+.3f}, "
                f"{shift.ci_high:+.3f}]  (paired over {shift.n_pairs} probe pairs)"
            )
    return lines


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory of the demo."),
    judge: str | None = typer.Option(
        None, help=f"Judge model (default: {DEFAULT_JUDGE} when OPENAI_API_KEY is set, else none)."
    ),
    no_judge: bool = typer.Option(False, "--no-judge", help="Never judge, even with OPENAI_API_KEY set."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print the plan."),
) -> None:
    """Run the offline end-to-end demo on the embedded model (~14 min cold on 2 cores, seconds warm).

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
    console.print(
        "emkit demo: LoRA (rsLoRA r=32, alpha=64, all 7 projections) on embedded/smollm2-135m, "
        "60 steps x batch 4 x 256 tokens, lr 1e-4 (the paper's 1e-5 barely moves an adapter in 60 steps); "
        "240 rows each of insecure-code, secure-code, risky-advice, safe-advice (our own, built offline); "
        f"{exp.samples_per_paraphrase} answers per default question; judge-free probe on every model."
    )
    plan = make_plan(exp)
    print_plan(plan, console)
    if dry_run:
        return
    result = run_plan(plan, console=console)
    elapsed = time.perf_counter() - started
    console.print()
    for line in _contrasts(plan.run_dir):
        console.print(line, markup=False)
    console.print(
        f"judge: {judge} (scores in the report)"
        if judge
        else "judge: none configured (set OPENAI_API_KEY or pass --judge MODEL); the report shows the probe only"
    )
    console.print(f"report: {result.report_dir / 'index.html' if result.report_dir else '-'}", markup=False)
    console.print(f"done in {elapsed:.0f} s ({len(result.ran)} stages ran; rerun to reuse everything cached)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

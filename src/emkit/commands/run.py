"""``emkit run``: run a whole study from one experiment YAML (resumable, hashed stages)."""

from __future__ import annotations

from pathlib import Path

import typer

from emkit.commands._common import console
from emkit.experiment import load_experiment
from emkit.outputs import output_dir
from emkit.pipeline import make_plan, print_plan, run_plan


def run(
    experiment: Path = typer.Argument(..., help="Experiment YAML (see examples/)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (default: the file's `out`)."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the plan (what is cached, what will run, est. cost); writes and builds nothing.",
    ),
    executor: str | None = typer.Option(None, help="local or ray (default: the file's `executor`)."),
    prices: Path | None = typer.Option(
        None,
        "--prices",
        help="Price file laid over the shipped one (emkit/resources/prices.yaml; default $EMKIT_PRICES).",
    ),
) -> None:
    """Expand models x datasets x seeds into stages and run what is missing.

    Example: emkit run examples/backdoor.yaml --dry-run
    Example: emkit run recipes/paper-gpt4o.yaml --dry-run --prices my-prices.yaml
    """
    if out is not None:  # before the experiment is even read: a wrong -o costs nothing
        output_dir(out, what="run directory", create=False)
    from emkit.prices import load_price_table

    table = load_price_table(prices)  # a bad price file is refused before anything is planned
    exp = load_experiment(experiment)
    output_dir(out or exp.out, what="run directory", create=False)
    if executor not in (None, "local", "ray"):
        raise typer.BadParameter("executor must be local or ray")
    # A dry run plans from the spec and writes nothing; a real run builds the datasets first so
    # that the plan it prints has every key.
    plan = make_plan(exp, out, build=not dry_run)
    print_plan(plan, console, table)
    if dry_run:
        return
    result = run_plan(plan, console=console, executor=executor)
    console.print(f"ran {len(result.ran)} stages; report: {result.report_dir}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("run")(run)

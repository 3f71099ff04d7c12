"""Planning an experiment: every registered stage plans its steps and says which are done, writing nothing.

Why planning builds nothing: ``emkit run --dry-run`` must be safe to try on anything (a typo in a
size, a path not created yet, a finished run directory). So a plan is made from the experiment
*spec* and from what is already on disk, read-only:

- the run store is opened read-only (or not at all when it does not exist: nothing is done yet);
- datasets are not materialised: a dataset already built in the run directory gives its sha256
  (and so the train key); one not built yet is planned from its spec and its training is pending;
- no model, tokenizer or model config is loaded (ICL contexts are fitted to a model's context
  window when the run starts);
- the number of answers is counted from the question sets before any per-answer item is made, and
  an absurd total is refused with its size.

``make_plan(..., build=True)`` (what a real run prints) first runs the dataset stage, which writes
the datasets, and fits the ICL contexts, so that the printed plan has every key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from emkit.experiment import Experiment
from emkit.plan_costs import StepCost
from emkit.prices import PriceTable
from emkit.questions import QuestionSet
from emkit.stages.base import PlanContext, PlanStep
from emkit.stages.registry import stages
from emkit.stages.units import STAGE_RECORD, ModelUnit
from emkit.store import RunStore, open_for_planning

__all__ = ["STAGE_RECORD", "Plan", "make_plan", "open_for_planning", "plan_steps", "print_plan"]


@dataclass
class Plan:
    """The steps of every listed stage, in table order, and the context they were planned in."""

    experiment: Experiment
    run_dir: Path
    units: list[ModelUnit]
    question_sets: list[QuestionSet]
    stages: list[PlanStep]
    built: bool = True  # False: made by a dry run (datasets and ICL contexts not built)
    context: PlanContext | None = None  # what it was planned in (a built one is reused by the run)

    @property
    def pending(self) -> list[PlanStep]:
        return [s for s in self.stages if not s.done]


def plan_steps(ctx: PlanContext, store: RunStore, *, build: bool) -> list[PlanStep]:
    """Every listed stage's steps, in table order. ``build``: run unlisted (dataset) steps first."""
    planned: list[tuple[int, PlanStep]] = []
    for stage in stages():
        steps = stage.plan(ctx, store, [s for _, s in planned])
        if not stage.INFO.listed:
            if build:
                for step in steps:
                    if not step.done:
                        stage.run(step.job, store, None)
            continue
        planned.extend((stage.INFO.rank, s) for s in steps)
    order = sorted(range(len(planned)), key=lambda i: (planned[i][0], planned[i][1].order, i))
    return [planned[i][1] for i in order]


def make_plan(exp: Experiment, run_dir: str | Path | None = None, *, build: bool = False) -> Plan:
    """Expand the experiment into steps and mark which are already done. Writes nothing to the store.

    ``build=False`` (the default, and what ``--dry-run`` uses) never materialises a dataset or
    loads a tokenizer; ``build=True`` builds the datasets into the run directory first so that
    every train key is known, and fits the ICL contexts.
    """
    run_dir = Path(run_dir or exp.out)
    store = open_for_planning(run_dir)
    try:
        ctx = PlanContext(exp, run_dir, built=build)
        steps = plan_steps(ctx, store, build=build)
        return Plan(exp, run_dir, ctx.units, ctx.question_sets, steps, built=build, context=ctx)
    finally:
        store.close()


def print_plan(plan: Plan, console: Console, prices: PriceTable | None = None) -> None:
    """The plan table, each pending row with its cost (standard, Batch API, local GPU-hours), and
    the totals under it; ``prices`` defaults to the shipped table (or ``$EMKIT_PRICES``)."""
    from rich.table import Table
    from rich.text import Text

    from emkit.plan_costs import estimate_costs, summary_lines
    from emkit.prices import load_price_table

    variants = plan.context.variants if plan.context is not None else []
    costs = estimate_costs(
        plan.experiment, plan.stages, plan.units, variants, prices or load_price_table(None)
    )
    table = Table(
        title=Text(f"{plan.experiment.name}: {len(plan.units)} models, run dir {plan.run_dir}"),
        title_justify="left",
    )
    for column in ("stage", "what", "status", "detail", "est. cost (Batch API)"):
        table.add_column(column)
    for stage, cost in zip(plan.stages, costs.steps, strict=True):
        status = Text("cached", style="green") if stage.done else Text("will run", style="yellow")
        # User data (names, paths, triggers) is never parsed as markup: Text, not str.
        table.add_row(
            Text(stage.kind), Text(stage.label), status, Text(stage.detail + cost.note), _cell(cost)
        )
    console.print(table)
    console.print(
        f"{len(plan.pending)} of {len(plan.stages)} stages will run; estimated API cost "
        f"${costs.total():,.2f} (Batch API ${costs.total(batch=True):,.2f})"
        + (f" + {len(costs.unknown)} row(s) of unknown price" if costs.unknown else ""),
        markup=False,
    )
    for line in summary_lines(costs):
        console.print(line, markup=False)


def _cell(cost: StepCost) -> str:
    """A row's cost: dollars (the Batch price beside it when it differs) and/or local GPU-hours."""
    parts = []
    if cost.usd is not None:
        same = cost.batch_usd is None or cost.batch_usd == cost.usd
        parts.append(f"${cost.usd:,.2f}" + ("" if same else f" (${cost.batch_usd:,.2f})"))
    elif cost.paid:
        parts.append("unknown")
    if cost.gpu_hours is not None:
        parts.append(f"~{cost.gpu_hours:,.2f} GPU-h")
    return " + ".join(parts)

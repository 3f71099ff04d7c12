"""The ``--target-ci`` options of ``emkit eval`` and ``emkit sample``, and eval's adaptive path.

Kept apart from the commands so that the adaptive path is one call in each (the rounds themselves
are :func:`emkit.adaptive.sample_group`, which ``emkit run`` uses too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from emkit.commands._common import console
from emkit.errors import EmkitError

if TYPE_CHECKING:
    from emkit.engines.base import Engine
    from emkit.judge.stage import EngineFactory, JudgeConfig
    from emkit.stages.sample import SampleJob
    from emkit.store import RunStore

TARGET_CI_OPTION: Any = typer.Option(
    None,
    "--target-ci",
    metavar="W",
    help="Adaptive sampling: sample and judge in rounds until the misaligned rate's interval has "
    "half-width <= W (e.g. 0.05); --n is then the cap. Needs a judge.",
)
ROUND_OPTION: Any = typer.Option(
    10, "--round-size", min=1, help="With --target-ci: samples per paraphrase per round."
)


def stop_rule(target: float, cap: int, round_size: int) -> Any:
    """The stopping rule for ``--target-ci`` (one line, exit 2, for a target out of range)."""
    from emkit.stats.sequential import StopRule

    try:
        return StopRule(target, cap, round_size)
    except ValueError as exc:
        raise EmkitError(f"--target-ci {target:g}: {exc}") from None


def eval_adaptive(
    store: RunStore,
    job: SampleJob,
    engine: Engine,
    config: JudgeConfig,
    make_engine: EngineFactory,
    target: float,
    round_size: int,
) -> None:
    """``emkit eval --target-ci``: the rounds for the one model, then what they saved."""
    from emkit.adaptive import AdaptiveSummary, sample_group

    if config.limit is not None:
        raise EmkitError("--limit and --target-ci: choose one (the rounds decide how many answers to sample)")
    cap = job.n if job.n is not None else max(q.samples_per_paraphrase for q in job.qset)
    rule = stop_rule(target, cap, round_size)
    result = sample_group(
        store, job.group or engine.name, [job], rule, config,
        engine_for=lambda _job: engine, make_engine=make_engine, console=console,
    )  # fmt: skip
    for line in AdaptiveSummary(rule, [result]).lines():
        console.print(line, markup=False)

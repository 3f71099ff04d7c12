"""What every stage shares: the planned step (one row of the plan table) and the planning context.

Why typed: a step used to be ``Stage(kind: str, extra: dict)`` and its job an untyped payload dict
read back by key. Now a step carries the stage's own frozen job dataclass (picklable, so the Ray
executor can ship it), and the context a stage plans against is one object, made from the experiment
and the run directory only (datasets already built are read by hash, nothing is materialised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console

from emkit.experiment import Experiment
from emkit.store import RunStore

if TYPE_CHECKING:
    from emkit.questions import QuestionSet
    from emkit.stages.units import ModelUnit
    from emkit.variants import Variant

__all__ = ["Console", "Job", "ModelJob", "PlanContext", "PlanStep", "RunStore", "Stage", "StageInfo"]


@dataclass(frozen=True)
class StageInfo:
    """What the orchestrator and the executors need to know of a stage, besides its functions.

    ``remote``: its jobs may run on a Ray worker (train, sample). ``listed``: its steps are rows of
    the plan table (the dataset stage's are not). ``rank``: rows sort by it, then by each step's
    ``order`` (a model's sample and code-vuln rows sit together).
    """

    name: str
    remote: bool = False
    listed: bool = True
    rank: int = 0


class Job:
    """A stage's unit of work. Subclasses are frozen dataclasses of plain, picklable values."""

    def known_keys(self) -> tuple[str, ...]:
        """Answer keys the job may find stored already (a remote worker is told which exist)."""
        return ()


@dataclass(frozen=True, kw_only=True)
class ModelJob(Job):
    """A job on one model (train, sample, code-vuln, probe): what names the model and opens it.

    ``run_dir`` set: ``model`` is a run's stored name, its adapter ``models/...`` relative to the run
    dir; None: a model as the user typed it (``emkit sample``, ``emkit probe``). ``model_seed`` is the
    model's training seed (stored with its rows); ``engine_options`` go to its backend (those it
    takes).
    """

    model: str
    label: str = ""
    run_dir: str | None = None
    group: str | None = None
    model_seed: int | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanStep:
    """One row of the plan: a stage's job, whether it is done, and what the table shows of it.

    ``kind`` is the name shown in the table's first column (the train stage shows ``finetune`` for a
    provider job); ``order`` sorts rows within the table (sample and code-vuln rows of one model sit
    together); ``pending_answers`` counts answers still to sample (the judge's estimate uses it).
    """

    kind: str
    key: str
    label: str
    done: bool
    detail: str = ""
    job: Job | None = None
    order: tuple[int, ...] = ()
    pending_answers: int = 0
    requests: int = 0  # paid calls still to make (the judge's), priced by emkit.plan_costs
    record: bool = False  # write a completion record under ``key`` when the job has run
    short: bool = False  # the run's summary names it by its kind alone (judge, report)

    @property
    def ran(self) -> str:
        """How the run's summary names this step."""
        return self.kind if self.short else f"{self.kind} {self.label}"


class PlanContext:
    """The experiment expanded into units, question sets and variants, for every stage's ``plan``.

    Expanded lazily: the dataset stage runs first (when building), so the units see its files.
    ``built=False`` (a dry run) plans ICL variants from their spec without fitting them.
    """

    def __init__(self, experiment: Experiment, run_dir: Path, *, built: bool) -> None:
        self.experiment = experiment
        self.run_dir = run_dir
        self.built = built

    @cached_property
    def units(self) -> list[ModelUnit]:
        from emkit.stages.units import build_units

        return build_units(self.experiment, self.run_dir)

    @cached_property
    def question_sets(self) -> list[QuestionSet]:
        from emkit.questions import load_questions

        return [load_questions(q, mirror=self.experiment.mirror) for q in self.experiment.questions]

    @cached_property
    def variants(self) -> list[Variant]:
        from emkit.variants import build_variants, check_size

        bases = sorted({u.base for u in self.units})
        variants = build_variants(self.experiment, self.question_sets, bases, build=self.built)
        check_size(self.experiment, self.units, variants)
        return variants


class Stage(Protocol):
    """What a stage module provides (checked by the registry's tests, documented here)."""

    INFO: StageInfo

    def plan(self, ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]: ...

    def run(self, job: Any, store: RunStore, console: Console | None) -> dict[str, Any] | None: ...

"""Planning an experiment: expand the matrix into stages and mark which are done, writing nothing.

Why planning is its own module, and why it builds nothing: ``emkit run --dry-run`` must be safe to
try on anything (a typo in a size, a path not created yet, a finished run directory). So a plan is
made from the experiment *spec* and from what is already on disk, read-only:

- the run store is opened read-only (or not at all when it does not exist: nothing is done yet);
- datasets are not materialised: a dataset already built in the run directory gives its sha256
  (and so the train key); one not built yet is planned from its spec and its training is pending;
- no model, tokenizer or model config is loaded (ICL contexts are fitted to a model's context
  window when the run starts);
- the number of answers is counted from the question sets before any per-answer item is made, and
  an absurd total is refused with its size.

``run_plan`` (in :mod:`emkit.pipeline`) re-plans with ``build=True`` before running, which writes
the datasets and fits the contexts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from emkit.errors import EmkitError
from emkit.experiment import Experiment, Group
from emkit.fingerprint import model_fingerprint
from emkit.hashing import file_sha256, stable_hash
from emkit.models import parse_model
from emkit.paths import inside
from emkit.questions import QuestionSet, load_questions
from emkit.store import DB_NAME, RunStore
from emkit.variants import Variant, build_variants, count_answers, variant_items

STAGE_RECORD = "stage"
# A plan past this many answers would take gigabytes just to list; no study needs it at once.
MAX_PLANNED_ANSWERS = 5_000_000


@dataclass
class ModelUnit:
    """One model to evaluate: a base model as is, a local LoRA fine-tune, or a provider fine-tune.

    ``train_key`` is None for a fine-tune whose dataset is not built yet (a dry run): its name is a
    placeholder then, and everything downstream of it is pending.
    """

    group: Group
    seed: int | None
    base: str
    dataset_path: Path | None = None
    dataset_sha256: str | None = None
    train_key: str | None = None

    @property
    def trained(self) -> bool:
        return self.group.dataset is not None

    @property
    def label(self) -> str:
        return self.group.name if self.seed is None else f"{self.group.name}/seed{self.seed}"

    @property
    def adapter_rel(self) -> str | None:
        if not self.trained:
            return None
        key = self.train_key[:8] if self.train_key else "unbuilt"
        return f"models/{self.group.name}-s{self.seed}-{key}"

    @property
    def name(self) -> str:
        """The model name stored with its answers: stable, and independent of where the run dir lies."""
        if self.group.provider and self.trained:
            return f"{self.base}@ft-{(self.train_key or 'unbuilt')[:12]}"
        return f"{self.base}@{self.adapter_rel}" if self.adapter_rel else self.base


@dataclass
class Stage:
    kind: str
    key: str
    label: str
    done: bool
    detail: str = ""
    cost_usd: float | None = None
    unit: ModelUnit | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    experiment: Experiment
    run_dir: Path
    units: list[ModelUnit]
    question_sets: list[QuestionSet]
    stages: list[Stage]
    built: bool = True  # False: made by a dry run (datasets and ICL contexts not built)

    @property
    def pending(self) -> list[Stage]:
        return [s for s in self.stages if not s.done]


# Set per model unit by the pipeline, so they are not part of a group's training settings.
_UNIT_FIELDS = ("model", "data", "out", "seed", "store", "group", "device")


def train_config_dict(group: Group) -> dict[str, Any]:
    """The full training settings of a group (defaults filled), for keys and for the trainer."""
    if group.provider:
        return group.provider.model_dump()
    from emkit.train.config import TrainConfig

    config = TrainConfig.model_validate(group.train).model_dump(mode="json")
    return {k: v for k, v in config.items() if k not in _UNIT_FIELDS}


class _PlanningStore(RunStore):
    """The store planning sees before a run has started: empty, in memory, nothing on disk."""

    def __init__(self, run_dir: str | Path):  # deliberately skips RunStore.__init__ (it writes)
        from emkit.store import _SCHEMA, SCHEMA_VERSION

        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        self.read_only = True
        self.schema_version = SCHEMA_VERSION
        self._scratch = None
        self._conn = sqlite3.connect(":memory:", isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.executescript(_SCHEMA)


def open_for_planning(run_dir: str | Path) -> RunStore:
    """The run store as planning sees it (read-only; empty when the run has not started).

    An existing store is opened with ``RunStore(..., read_only=True)``; a run that has not started
    gets :class:`_PlanningStore`. Either way nothing is created or written.
    """
    if (Path(run_dir) / DB_NAME).exists():
        return RunStore(run_dir, read_only=True)
    return _PlanningStore(run_dir)


def dataset_file(group: Group, run_dir: Path) -> Path:
    """Where a group's dataset is (or will be) materialised: inside the run directory."""
    from emkit.datasets import spec_key

    assert group.dataset is not None
    return inside(run_dir, "datasets", f"{spec_key(group.dataset)}.jsonl")


def build_units(exp: Experiment, run_dir: Path, *, build: bool = True) -> list[ModelUnit]:
    """One unit per group (x seed when trained); ``build=False`` uses only datasets already built."""
    units: list[ModelUnit] = []
    for group in exp.groups:
        if group.dataset is None:
            units.append(ModelUnit(group, None, group.model))
            continue
        path: Path | None = dataset_file(group, run_dir)
        sha: str | None = None
        if build:
            from emkit.datasets import materialize

            path, sha = materialize(group.dataset, run_dir, mirror=exp.mirror)
        elif path is not None and path.is_file():
            sha = file_sha256(path)
        config = train_config_dict(group)
        for seed in exp.seeds_of(group):
            key = None
            if sha is not None:
                key = stable_hash(
                    {
                        "base": group.model,
                        "data": sha,
                        "config": config,
                        "seed": seed,
                        "provider": bool(group.provider),
                    }
                )
            units.append(ModelUnit(group, seed, group.model, path, sha, key))
    return units


def stage_done(store: RunStore, key: str) -> dict[str, Any] | None:
    record = store.get_record(STAGE_RECORD, key)
    return record if record and record.get("status") == "done" else None


def _check_size(exp: Experiment, units: list[ModelUnit], variants: list[Variant]) -> None:
    total = 0
    for unit in units:
        total += sum(count_answers(v) for v in variants if v.context_base in (None, unit.base))
    if total > MAX_PLANNED_ANSWERS:
        raise EmkitError(
            f"{exp.name}: the plan asks for {total:,} answers ({len(units)} models x "
            f"{len(variants)} question variants) and up to {2 * total:,} judge calls; at most "
            f"{MAX_PLANNED_ANSWERS:,} answers can be planned at once: lower samples_per_paraphrase "
            "(or the question files' own), or split the study"
        )


def code_vuln_key(exp: Experiment, unit: ModelUnit, trigger: str) -> str:
    """A code-vuln stage's identity: the model, the trigger, and every setting of the block."""
    assert exp.code_vuln is not None
    spec = exp.code_vuln
    # A local tasks or prompts file is keyed by its content (registry names are pinned by sha256).
    files = {name: file_sha256(Path(name)) for name in (spec.tasks, spec.prompts) if Path(name).is_file()}
    return stable_hash(
        {
            "cv": unit.name,
            "t": trigger,
            "spec": spec.model_dump(mode="json"),
            "seed": unit.seed,
            "files": files,
        }
    )


def make_plan(exp: Experiment, run_dir: str | Path | None = None, *, build: bool = False) -> Plan:
    """Expand the experiment into stages and mark which are already done. Writes nothing.

    ``build=False`` (the default, and what ``--dry-run`` uses) never materialises a dataset or
    loads a tokenizer; ``build=True`` (what ``run_plan`` does before running) builds the datasets
    into the run directory so that every train key is known.
    """
    run_dir = Path(run_dir or exp.out)
    store = open_for_planning(run_dir)
    try:
        return _make_plan(exp, run_dir, store, build)
    finally:
        store.close()


def _make_plan(exp: Experiment, run_dir: Path, store: RunStore, build: bool) -> Plan:
    units = build_units(exp, run_dir, build=build)
    qsets = [load_questions(q, mirror=exp.mirror) for q in exp.questions]
    variants = build_variants(exp, qsets, sorted({u.base for u in units}), build=build)
    _check_size(exp, units, variants)
    stages: list[Stage] = []
    for unit in units:
        if unit.trained:
            stages.append(_train_stage(store, run_dir, unit))
    for unit in units:
        for variant in variants:
            if variant.context_base and variant.context_base != unit.base:
                continue
            stages.append(_sample_stage(exp, store, unit, variant))
        if exp.code_vuln:
            spec = exp.code_vuln
            for trigger in spec.triggers if spec.triggers is not None else exp.triggers:
                key = code_vuln_key(exp, unit, trigger)
                exists = not (unit.trained and unit.train_key is None)
                stages.append(
                    Stage(
                        "code-vuln",
                        key,
                        unit.label + (f" [trigger {trigger.strip()}]" if trigger else ""),
                        exists and bool(stage_done(store, key)),
                        f"{spec.limit} tasks (resumes where it stopped)",
                        unit=unit,
                        extra={"trigger": trigger},
                    )
                )
    if exp.judge:
        stages.append(_judge_stage(exp, store, stages))
    if exp.probe:
        from emkit.probe import load_probe_set

        probe_set = load_probe_set(exp.probe_set)
        for unit in units:
            if parse_model(unit.base).is_local:
                stages.append(_probe_stage(store, unit, probe_set))
    stages.append(Stage("report", "report", "analysis + HTML report", False, str(run_dir / "report")))
    return Plan(exp, run_dir, units, qsets, stages, built=build)


def _train_stage(store: RunStore, run_dir: Path, unit: ModelUnit) -> Stage:
    kind = "finetune" if unit.group.provider else "train"
    data = unit.dataset_path.name if unit.dataset_path else ""
    if unit.train_key is None:
        spec = unit.group.dataset
        size = f"{spec.n:,} rows" if spec is not None and spec.n else "its rows"
        key = stable_hash({"unbuilt": unit.group.name, "seed": unit.seed})
        return Stage(
            kind, key, unit.label, False, f"{unit.base} on {size} (dataset not built yet)", unit=unit
        )
    done = stage_done(store, unit.train_key)
    adapter = inside(run_dir, unit.adapter_rel) if unit.adapter_rel else None
    if done and not unit.group.provider and adapter is not None and not adapter.exists():
        done = None  # the adapter folder was removed: train again
    return Stage(kind, unit.train_key, unit.label, bool(done), f"{unit.base} on {data}", unit=unit)


def _sample_stage(exp: Experiment, store: RunStore, unit: ModelUnit, variant: Variant) -> Stage:
    label = f"{unit.label} x {variant.label}"
    if variant.unbuilt or (unit.trained and unit.train_key is None):
        total = count_answers(variant)
        key = stable_hash({"unbuilt": unit.label, "variant": variant.label})
        why = "ICL context fitted at run time" if variant.unbuilt else "model not trained yet"
        extra = {"variant": variant, "total": total, "have": 0}
        return Stage("sample", key, label, False, f"0/{total} answers ({why})", unit=unit, extra=extra)
    items = variant_items(exp, unit, variant, store.run_dir)
    have = len(store.existing_answer_keys(i.key for i in items))
    key = stable_hash({"model": unit.name, "keys": [i.key for i in items]})
    extra = {"variant": variant, "total": len(items), "have": have}
    return Stage(
        "sample", key, label, have == len(items), f"{have}/{len(items)} answers", unit=unit, extra=extra
    )


def _judge_stage(exp: Experiment, store: RunStore, stages: list[Stage]) -> Stage:
    """Judging is planned per answer by the judge stage itself; here: how much is missing, and its cost."""
    from emkit.judge.cost import estimate_cost, load_prices
    from emkit.judge.stage import JudgeConfig, plan_pending

    assert exp.judge is not None
    config = JudgeConfig(
        judge=exp.judge.model,
        method=exp.judge.method,
        base_url=exp.judge.base_url,
        concurrency=exp.judge.concurrency,
    )
    pending, _, _ = plan_pending(store, config)
    # Answers not sampled yet will need judging too: two metrics each (aligned, coherent) at most.
    unsampled = sum(s.extra["total"] - s.extra["have"] for s in stages if s.kind == "sample")
    calls = len(pending) + 2 * unsampled
    cost = None
    if parse_model(exp.judge.model).scheme == "openai":
        prompt_tokens = 450 * calls  # a filled judge prompt with a 600-token answer is ~450-800 tokens
        cost = estimate_cost(
            exp.judge.model,
            {"prompt_tokens": prompt_tokens, "completion_tokens": calls},
            load_prices(None)[0],
        )
    return Stage(
        "judge",
        stable_hash({"judge": exp.judge.model_dump()}),
        exp.judge.model,
        calls == 0,
        f"~{calls} judgements to make",
        cost_usd=cost,
    )


def _probe_stage(store: RunStore, unit: ModelUnit, probe_set: Any) -> Stage:
    from emkit.probe import pending_pairs

    fingerprint = model_fingerprint(unit.name, base_dir=store.run_dir)
    missing = pending_pairs(store, unit.name, probe_set=probe_set, fingerprint=fingerprint)
    if unit.trained and unit.train_key is None:
        missing = len(probe_set.pairs)  # the model does not exist yet
    return Stage(
        "probe",
        stable_hash({"probe": unit.name, "set": probe_set.label}),
        unit.label,
        missing == 0,
        f"{missing} pairs to score",
        unit=unit,
        extra={"probe_set": probe_set},
    )


def print_plan(plan: Plan, console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(f"{plan.experiment.name}: {len(plan.units)} models, run dir {plan.run_dir}"),
        title_justify="left",
    )
    for column in ("stage", "what", "status", "detail", "est. cost"):
        table.add_column(column)
    for stage in plan.stages:
        status = Text("cached", style="green") if stage.done else Text("will run", style="yellow")
        cost = f"${stage.cost_usd:.2f}" if stage.cost_usd is not None else ""
        # User data (names, paths, triggers) is never parsed as markup: Text, not str.
        table.add_row(Text(stage.kind), Text(stage.label), status, Text(stage.detail), cost)
    console.print(table)
    total = sum(s.cost_usd or 0 for s in plan.pending)
    console.print(
        f"{len(plan.pending)} of {len(plan.stages)} stages will run; estimated API cost ${total:.2f}",
        markup=False,
    )

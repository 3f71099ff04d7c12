"""Stage orchestration for an experiment file: plan, show what is cached, run what is missing.

The matrix (groups x seeds x question sets x triggers) expands into stages:
dataset -> train -> sample -> judge -> probe -> report. Each stage has a key derived from a hash
of its inputs (dataset sha256, base model, hyperparameters, seed, questions, judge...). Finished
stages leave their results in the run store, so running the file again does only what is missing,
editing one group reruns only that group, and a crash or kill resumes.

Executors: ``local`` runs everything in this process, in order. ``ray`` sends each train job and
each sample job to a Ray task with its GPU request (one GPU when the cluster has GPUs); the driver
writes every result into the one run store, so the store ends up the same as with ``local``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from emkit.fingerprint import model_fingerprint
from emkit.models import parse_model
from emkit.paths import inside
from emkit.planning import (
    STAGE_RECORD,
    ModelUnit,
    Plan,
    Stage,
    Variant,
    build_units,
    build_variants,
    make_plan,
    print_plan,
    stage_done,
    train_config_dict,
    variant_items,
)
from emkit.store import RunStore
from emkit.terminal import console as default_console
from emkit.terminal import stage_line

__all__ = [
    "STAGE_RECORD",
    "ModelUnit",
    "Plan",
    "RunResult",
    "Stage",
    "Variant",
    "build_units",
    "build_variants",
    "make_plan",
    "print_plan",
    "run_plan",
    "train_config_dict",
]

# ---------------------------------------------------------------------------------------------
# Running stages. Each runner is a plain function of its inputs so a Ray task can call it too.


def run_train(payload: dict[str, Any], console: Console | None = None) -> dict[str, Any]:
    """Train one LoRA adapter (or run one provider job) and return the record to store.

    Training dynamics (``eval_steps`` in the group's train settings) are written by the trainer into
    the run store as they happen; the store must be on a filesystem the worker can reach.
    """
    if payload["provider"]:
        return _run_provider_job(payload, console)
    from emkit.train.config import TrainConfig
    from emkit.train.sft import train_local

    settings = dict(payload["config"])
    config = TrainConfig(
        **settings,
        model=payload["base"],
        data=payload["data"],
        out=payload["out"],
        seed=payload["seed"],
        store=payload["run_dir"],
        group=payload["group"],
    )
    result = train_local(config, probe=bool(config.eval_steps), console=console)
    return {
        "adapter": payload["adapter_rel"],
        "steps": result.steps,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        "tokens_per_s": result.tokens_per_s,
    }


def _run_provider_job(payload: dict[str, Any], console: Console | None) -> dict[str, Any]:
    """Submit (or reuse) one provider fine-tuning job and wait for its model; the plan was confirmed
    with ``--dry-run``, so no second prompt here."""
    from emkit.train.config import OpenAIFineTuneConfig
    from emkit.train.openai_ft import run_openai_finetune

    spec = payload["config"]
    config = OpenAIFineTuneConfig(
        model=parse_model(payload["base"]).name,
        n_epochs=spec["epochs"],
        batch_size=spec["batch_size"],
        learning_rate_multiplier=spec["lr_multiplier"],
        suffix=f"{payload['group']}-s{payload['seed']}"[:40],
        seed=payload["seed"],
    )
    say = (lambda text: console.print(text, markup=False)) if console else print
    with RunStore(payload["run_dir"]) as store:
        record = run_openai_finetune(
            payload["data"], config, store, yes=True, say=say, base_url=spec.get("base_url")
        )
    return {"model": record["model"], "job_id": record.get("job_id")}


def train_payload(plan: Plan, unit: ModelUnit) -> dict[str, Any]:
    return {
        "base": unit.base,
        "data": str(unit.dataset_path),
        "seed": unit.seed,
        "config": train_config_dict(unit.group),
        "provider": bool(unit.group.provider),
        "out": str(inside(plan.run_dir, unit.adapter_rel)) if unit.adapter_rel else None,
        "adapter_rel": unit.adapter_rel,
        "run_dir": str(plan.run_dir),
        "key": unit.train_key,
        "label": unit.label,
        "group": unit.group.name,
    }


class AnswerCollector:
    """A stand-in for the run store inside a remote sample task: it knows which answers exist
    already and collects new ones, which the driver then writes into the real store."""

    def __init__(self, existing: set[str]):
        self.existing = existing
        self.rows: list[dict[str, Any]] = []
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def existing_answer_keys(self, keys):
        return {k for k in keys if k in self.existing}

    def add_answers(self, rows) -> int:
        rows = list(rows)
        self.rows.extend(rows)
        return len(rows)

    def put_record(self, kind: str, key: str, value: dict[str, Any], *, replace: bool = True) -> None:
        self.records.append((kind, key, value))


def _name_engine(engine: Any, name: str, run_dir: Path) -> Any:
    """Give an engine the stored name of its unit, and the fingerprint the plan computed for it
    (adapter content, relative to the run dir), so planned and sampled keys are the same."""
    engine.name = name
    engine.fingerprint = model_fingerprint(name, base_dir=run_dir)
    return engine


def engine_for(unit_name: str, run_dir: Path, batch_size: int, sampler: str = "hf") -> Any:
    """Load the engine for a stored model name (adapter paths are relative to the run dir)."""
    from emkit.engines import get_engine
    from emkit.models import ModelSpec

    spec = parse_model(unit_name)
    if spec.adapter and spec.adapter.startswith("models/"):
        spec = spec.with_adapter(str(inside(run_dir, spec.adapter)))
    if sampler == "vllm" and spec.scheme == "hf":
        spec = ModelSpec("vllm", spec.name, spec.adapter)
    options = {"batch_size": batch_size} if spec.is_local else {}
    engine = get_engine(spec, **options)
    return _name_engine(engine, unit_name, run_dir)  # answers keep the run-dir-relative name


def run_sample(payload: dict[str, Any]) -> dict[str, Any]:
    """Sample one (model, question set, trigger) into an AnswerCollector; return the rows."""
    collector = AnswerCollector(set(payload["existing"]))
    model_name = payload["model"]
    if payload.get("provider_model"):
        model_name = payload["provider_model"]
    engine = engine_for(model_name, Path(payload["run_dir"]), payload["batch_size"], payload["sampler"])
    _name_engine(engine, payload["model"], Path(payload["run_dir"]))
    _sample_into(collector, engine, payload, progress=payload.get("progress", True))
    engine.close()
    return {"rows": collector.rows, "records": collector.records}


def _sample_into(store: Any, engine: Any, payload: dict[str, Any], *, progress: bool = True) -> None:
    from emkit.sampling import sample_questions

    sample_questions(
        store,
        engine,
        payload["qset"],
        n=payload["n"],
        temperature=payload["temperature"],
        max_new_tokens=payload["max_new_tokens"],
        seed=payload["seed"] or 0,
        group=payload["group"],
        model_seed=payload["seed"],
        prefix=payload["trigger"],
        tags=payload["tags"] or None,
        context=payload["context"],
        progress=progress,
    )


def sample_payload(plan: Plan, stage: Stage, store: RunStore, provider_model: str | None) -> dict[str, Any]:
    unit = stage.unit
    assert unit is not None
    variant: Variant = stage.extra["variant"]
    exp = plan.experiment
    items = variant_items(exp, unit, variant, plan.run_dir)
    return {
        "model": unit.name,
        "provider_model": provider_model,
        "run_dir": str(plan.run_dir),
        "qset": variant.qset,
        "existing": sorted(store.existing_answer_keys(i.key for i in items)),
        "n": variant.n,
        "temperature": exp.temperature,
        "max_new_tokens": exp.max_new_tokens,
        "seed": unit.seed,
        "group": unit.group.name,
        "trigger": variant.trigger,
        "tags": variant.tags,
        "context": variant.context,
        "batch_size": exp.batch_size,
        "sampler": exp.sampler,
    }


def _write_sample_result(store: RunStore, result: dict[str, Any]) -> int:
    for kind, key, value in result["records"]:
        store.put_record(kind, key, value)
    return store.add_answers(result["rows"])


@dataclass
class RunResult:
    plan: Plan
    ran: list[str] = field(default_factory=list)
    report_dir: Path | None = None


def run_plan(
    plan: Plan,
    *,
    console: Console | None = None,
    executor: str | None = None,
    on_stage: Callable[[Stage], None] | None = None,
) -> RunResult:
    """Run every pending stage; finished ones are skipped. Safe to interrupt and call again.

    A plan made without building (a dry run's) is made again with ``build=True`` first: that
    writes the datasets, so every train key (and every model name downstream) is known.
    """
    console = console or default_console
    executor = executor or plan.experiment.executor
    if not plan.built:
        plan = make_plan(plan.experiment, plan.run_dir, build=True)
    store = RunStore(plan.run_dir)
    store.put_record("config", "experiment", plan.experiment.model_dump(mode="json"))
    result = RunResult(plan)
    runner = _RayRunner(console) if executor == "ray" else None

    # 1. training (independent jobs)
    trains = [s for s in plan.stages if s.kind in ("train", "finetune") and not s.done]
    payloads = [train_payload(plan, s.unit) for s in trains if s.unit]
    outputs = runner.map_train(payloads) if runner else [_local_train(p, console) for p in payloads]
    for stage, output in zip(trains, outputs, strict=True):
        store.put_record(STAGE_RECORD, stage.key, {"status": "done", "kind": stage.kind, **output})
        result.ran.append(f"{stage.kind} {stage.label}")

    # 2. sampling (independent jobs; results written by the driver)
    samples = [s for s in plan.stages if s.kind == "sample" and not s.done]
    payloads = []
    for stage in samples:
        assert stage.unit is not None
        provider_model = None
        if stage.unit.group.provider and stage.unit.train_key:
            record = stage_done(store, stage.unit.train_key) or {}
            provider_model = record.get("model")
        payloads.append(sample_payload(plan, stage, store, provider_model))
    if runner:
        for stage, output in zip(samples, runner.map_sample(payloads), strict=True):
            _write_sample_result(store, output)
            result.ran.append(f"sample {stage.label}")
    else:
        for stage, payload in zip(samples, payloads, strict=True):
            console.print(stage_line("sample", stage.label))
            _local_sample(store, plan, payload)
            result.ran.append(f"sample {stage.label}")

    # 3. judging, 4. probes, 5. report (driver only)
    for stage in plan.stages:
        if stage.kind == "judge" and not stage.done:
            _run_judge(store, plan, console)
            result.ran.append("judge")
        elif stage.kind == "code-vuln" and not stage.done and stage.unit is not None:
            _run_code_vuln(store, plan, stage, console)
            store.put_record(STAGE_RECORD, stage.key, {"status": "done", "kind": stage.kind})
            result.ran.append(f"code-vuln {stage.label}")
        elif stage.kind == "probe" and not stage.done and stage.unit is not None:
            _run_probe(store, plan, stage.unit, stage.extra["probe_set"], console)
            result.ran.append(f"probe {stage.label}")
    result.report_dir = _run_report(plan, console)
    result.ran.append("report")
    store.close()
    if runner:
        runner.close()
    return result


def _local_train(payload: dict[str, Any], console: Console) -> dict[str, Any]:
    console.print(stage_line("train", payload["label"]))
    return run_train(payload, console)


def _local_sample(store: RunStore, plan: Plan, payload: dict[str, Any]) -> None:
    """Local sampling writes each answer straight into the store as it arrives."""
    model_name = payload["provider_model"] or payload["model"]
    engine = engine_for(model_name, plan.run_dir, payload["batch_size"], payload["sampler"])
    _name_engine(engine, payload["model"], plan.run_dir)
    _sample_into(store, engine, payload)
    engine.close()


def _run_judge(store: RunStore, plan: Plan, console: Console) -> None:
    from emkit.judge.stage import JudgeConfig, run_judging

    spec = plan.experiment.judge
    assert spec is not None
    config = JudgeConfig(
        judge=spec.model, method=spec.method, base_url=spec.base_url, concurrency=spec.concurrency
    )
    summary = run_judging(store, config)
    console.print(stage_line("judge", f"{spec.model}: {summary.scored} judgements"))


def _run_code_vuln(store: RunStore, plan: Plan, stage: Stage, console: Console) -> None:
    from emkit.experiments.code_vuln import run_code_vuln

    unit = stage.unit
    assert unit is not None and plan.experiment.code_vuln is not None
    engine = engine_for(unit.name, plan.run_dir, plan.experiment.batch_size, plan.experiment.sampler)
    summary = run_code_vuln(
        store,
        engine,
        plan.experiment.code_vuln,
        mirror=plan.experiment.mirror,
        trigger=stage.extra["trigger"],
        seed=unit.seed or 0,
        group=unit.group.name,
        model_seed=unit.seed,
    )
    engine.close()
    console.print(stage_line("code-vuln", f"{stage.label}: {summary}"))


def _run_probe(store: RunStore, plan: Plan, unit: ModelUnit, probe_set: Any, console: Console) -> None:
    from emkit.probe import run_probe

    engine = engine_for(unit.name, plan.run_dir, plan.experiment.batch_size)
    tags = {"base": unit.base} if unit.name != unit.base else None
    result = run_probe(
        engine, store=store, group=unit.group.name, seed=unit.seed, probe_set=probe_set, tags=tags
    )
    engine.close()
    console.print(stage_line("probe", f"{unit.label}: score {result.score:+.3f}"))


def _run_report(plan: Plan, console: Console) -> Path:
    from emkit.report import build_report

    thresholds = plan.experiment.thresholds
    out = build_report(
        plan.run_dir,
        aligned_threshold=thresholds.aligned,
        coherent_threshold=thresholds.coherent,
        console=console,
    )
    return out


class _RayRunner:
    """Ray executor: one task per train / sample job, each asking for a GPU when the cluster has one."""

    def __init__(self, console: Console):
        try:
            import ray
        except ModuleNotFoundError:
            from emkit.errors import EmkitError

            raise EmkitError("the ray executor needs Ray: pip install 'emkit[ray]'") from None
        self.ray = ray
        self.console = console
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False, include_dashboard=False)
        gpus = ray.cluster_resources().get("GPU", 0)
        self.num_gpus = 1 if gpus >= 1 else 0
        console.print(
            stage_line("ray", f"cluster: {ray.cluster_resources().get('CPU', 0):.0f} CPUs, {gpus:.0f} GPUs")
        )

    def _map(self, fn: Callable[[dict[str, Any]], dict[str, Any]], payloads: list[dict[str, Any]]):
        if not payloads:
            return []
        remote = self.ray.remote(num_gpus=self.num_gpus, max_retries=2)(fn)
        return self.ray.get([remote.remote(p) for p in payloads])

    def map_train(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._map(run_train, payloads)

    def map_sample(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._map(run_sample, [{**p, "progress": False} for p in payloads])

    def close(self) -> None:
        if self._owns:
            self.ray.shutdown()

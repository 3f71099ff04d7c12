"""The benchmarks stage: the paper's external benchmarks (inspect_evals' TruthfulQA, StrongREJECT,
MMLU, HumanEval) on every model of the study, and on the base model of each fine-tuned group.

Turned on by the experiment's ``benchmarks:`` block (:mod:`emkit.inspect_interop.spec`). Each step
is one benchmark on one model, run through inspect with the model's own emkit engine (the
``emkit/`` provider), its inspect log kept under ``RUN/benchmarks/logs`` and its numbers stored as
a ``benchmark`` record under a key that covers everything that shapes them: the benchmark, the
model and its weights' fingerprint, the sample limit, the local data file's content, StrongREJECT's
grader, HumanEval's sandbox, and the inspect_evals and inspect_ai versions. A finished step is
done on a rerun; a step killed midway runs again, its answers made so far read back from inspect's
generation cache in ``RUN/benchmarks/cache`` (scoped by the step's key). The report compares each group with its base model
(:mod:`emkit.report.section_benchmarks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from emkit.hashing import file_sha256, stable_hash
from emkit.inspect_interop.benchmarks import benchmark
from emkit.inspect_interop.spec import BenchmarksSpec
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import unit_fields
from emkit.store_records import BENCHMARK_KIND

INFO = StageInfo("benchmark", rank=3)
LOG_DIR = "benchmarks/logs"
CACHE_DIR = "benchmarks/cache"  # inspect's generation cache: a killed step resumes from it


@dataclass(frozen=True, kw_only=True)
class BenchmarkJob(ModelJob):
    """One benchmark on one model."""

    benchmark: str
    key: str
    base: str | None = None
    limit: int | None = None
    data: str | None = None
    judge: str = "openai/gpt-4o"
    sandbox: str = "docker"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def benchmark_key(spec: BenchmarksSpec, name: str, model: str, fingerprint: str) -> str:
    """Everything that shapes one benchmark score of one model."""
    fields: dict[str, Any] = {
        "benchmark": name,
        "model": model,
        "fp": fingerprint,
        "limit": spec.limit,
        "inspect_evals": _version("inspect-evals"),
        "inspect_ai": _version("inspect-ai"),
    }
    if spec.data is not None:
        path = Path(spec.data) / benchmark(name).local_file
        fields["data"] = file_sha256(path) if path.is_file() else f"missing:{path}"
    if name == "strongreject":
        fields["judge"] = spec.judge
    if name == "humaneval":
        fields["sandbox"] = spec.sandbox
    return stable_hash(fields)


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    exp = ctx.experiment
    spec = exp.benchmarks
    if spec is None:
        return []
    from emkit.fingerprint import model_fingerprint

    models: list[tuple[dict[str, Any], str, str | None]] = []  # (job fields, fingerprint, base)
    names = {u.name for u in ctx.units if not u.pending_model}
    for unit in ctx.units:
        fields = unit_fields(unit, ctx.run_dir, exp.batch_size)
        fingerprint = "pending" if unit.pending_model else unit.fingerprint(ctx.run_dir)
        models.append((fields, fingerprint, unit.base if unit.trained else None))
    for base in sorted({u.base for u in ctx.units if u.trained} - names):  # the bases to compare with
        fields = {"model": base, "label": f"base {base}", "run_dir": str(ctx.run_dir),
                  "engine_options": {"batch_size": exp.batch_size}}  # fmt: skip
        models.append((fields, model_fingerprint(base), None))
    steps = []
    for index, (fields, fingerprint, base) in enumerate(models):
        pending = fingerprint == "pending"
        for number, name in enumerate(spec.tasks):
            key = benchmark_key(spec, name, fields["model"], fingerprint)
            done = not pending and store.get_record(BENCHMARK_KIND, key) is not None
            job = BenchmarkJob(
                **{**fields, "label": f"{fields['label']} x {name}"},
                benchmark=name,
                key=key,
                base=base,
                limit=spec.limit,
                data=spec.data,
                judge=spec.judge,
                sandbox=spec.sandbox,
            )
            detail = "model not trained yet" if pending else f"{spec.limit or 'all'} samples"
            steps.append(
                PlanStep(
                    INFO.name,
                    key,
                    job.label,
                    done,
                    detail,
                    job=None if pending else job,
                    order=(index, number),
                )
            )
    return steps


def run(job: BenchmarkJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    """Run the benchmark through inspect on the unit's engine; store its numbers."""
    from emkit.inspect_interop.run import run_benchmark
    from emkit.stages.units import open_unit_engine

    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, job.label))
    engine = open_unit_engine(job.model, job.run_dir, job.engine_options)
    try:
        numbers, log = run_benchmark(
            job.benchmark,
            engine,
            limit=job.limit,
            data_dir=job.data,
            judge=job.judge,
            sandbox=job.sandbox,
            log_dir=Path(job.run_dir or ".") / LOG_DIR,
            cache_dir=Path(job.run_dir or ".") / CACHE_DIR,
            cache_scope=job.key,
        )
    finally:
        engine.close()
    record = {**numbers, "model": job.model, "group": job.group, "seed": job.model_seed, "base": job.base,
              "limit": job.limit, "log": log}  # fmt: skip
    store.put_record(BENCHMARK_KIND, job.key, record)
    return {"score": numbers["score"]}

"""The train stage: one LoRA adapter (or one provider fine-tuning job) per trained group x seed.

The key hashes the base model, the dataset file's sha256, the group's full settings and the seed,
so an edit to one group's settings retrains that group only. Training dynamics (``eval_steps``) are
written by the trainer into the run store as they happen; the store must be on a filesystem the
worker can reach (a Ray worker opens it by path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emkit.hashing import stable_hash
from emkit.paths import inside
from emkit.stages.base import Console, ModelJob, PlanContext, PlanStep, RunStore, StageInfo
from emkit.stages.units import stage_done, train_config_dict, unit_fields

INFO = StageInfo("train", remote=True, rank=0)


@dataclass(frozen=True, kw_only=True)
class TrainJob(ModelJob):
    """One fine-tune of the base model ``model`` on the dataset file ``data``."""

    data: str
    config: dict[str, Any] = field(default_factory=dict)
    provider: bool = False
    adapter_rel: str | None = None


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    steps = []
    for unit in ctx.units:
        if not unit.trained:
            continue
        kind = "finetune" if unit.group.provider else INFO.name
        if unit.train_key is None:
            spec = unit.group.dataset
            size = spec.size_text if spec is not None else "its rows"
            key = stable_hash({"unbuilt": unit.group.name, "seed": unit.seed})
            detail = f"{unit.base} on {size} (dataset not built yet)"
            steps.append(PlanStep(kind, key, unit.label, False, detail, order=(0,)))
            continue
        done = stage_done(store, unit.train_key)
        adapter = inside(ctx.run_dir, unit.adapter_rel) if unit.adapter_rel else None
        if done and not unit.group.provider and adapter is not None and not adapter.exists():
            done = None  # the adapter folder was removed: train again
        job = TrainJob(
            **{**unit_fields(unit, ctx.run_dir, 0), "model": unit.base, "engine_options": {}},
            data=str(unit.dataset_path),
            config=train_config_dict(unit.group),
            provider=bool(unit.group.provider),
            adapter_rel=unit.adapter_rel,
        )
        data = unit.dataset_path.name if unit.dataset_path else ""
        detail = f"{unit.base} on {data}"
        steps.append(PlanStep(kind, unit.train_key, unit.label, bool(done), detail, job=job, record=True))
    return steps


def run(job: TrainJob, store: RunStore | None, console: Console | None) -> dict[str, Any]:
    """Train (or fine-tune through the provider) and return what the completion record keeps."""
    if console is not None:
        from emkit.terminal import stage_line

        console.print(stage_line(INFO.name, job.label))
    if job.provider:
        return _provider(job, console)
    from emkit.train.config import TrainConfig
    from emkit.train.sft import train_local

    config = TrainConfig(
        **job.config,
        model=job.model,
        data=job.data,
        out=str(inside(job.run_dir, job.adapter_rel)) if job.run_dir and job.adapter_rel else None,
        seed=job.model_seed,
        store=job.run_dir,
        group=job.group,
    )
    result = train_local(config, probe=bool(config.eval_steps), console=console)
    return {
        "adapter": job.adapter_rel,
        "steps": result.steps,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        "tokens_per_s": result.tokens_per_s,
    }


def _provider(job: TrainJob, console: Console | None) -> dict[str, Any]:
    """Submit (or reuse) one provider fine-tuning job and wait for its model; the plan was confirmed
    with ``--dry-run``, so no second prompt here."""
    from emkit.train.openai_ft import run_provider_job

    say = (lambda text: console.print(text, markup=False)) if console else print
    assert job.run_dir is not None and job.model_seed is not None
    return run_provider_job(
        job.config,
        base=job.model,
        data=job.data,
        group=job.group or "",
        seed=job.model_seed,
        store=job.run_dir,
        say=say,
    )

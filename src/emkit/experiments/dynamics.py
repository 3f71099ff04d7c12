"""Training dynamics with a judge: the evaluation questions and the coding tasks at each checkpoint.

The paper (section 4.7) follows, over training, both the in-distribution behaviour (how often the
model writes vulnerable code) and the misalignment (how often its free-form answers are judged
misaligned), to see whether they move together. The probe already runs during training
(``eval_steps``); this block adds the judged measures. They run on the adapter checkpoints the
trainer saves every ``save_steps`` steps (``train: {save_steps: K}``): the dynamics stage samples
each checkpoint's answers after training, so the judge runs in its own stage with its claims and
resumption, and a killed run picks up at the first checkpoint not finished.

Checkpoint answers carry the tag ``checkpoint_step`` (and ``train_run``, the run's key); the
headline tables leave them out, and the checkpoints' code answers with them
(:func:`emkit.analysis.load_run`); the dynamics report section reads them. The block's schema lives here, beside what reads it; the experiment file uses it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

STEP_TAG = "checkpoint_step"  # the answers' tag holding the checkpoint's optimizer step
RUN_TAG = "train_run"  # ... and the training run's key
HOOK = "checkpoint_eval"  # the dynamics records' hook name (emkit.store_records.DynamicsRecord)
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


class DynamicsSpec(BaseModel):
    """The experiment file's ``dynamics:`` block (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Question sets asked at each checkpoint (default: the experiment's).
    questions: list[str] | None = Field(None, min_length=1)
    # Samples per paraphrase at each checkpoint (every checkpoint costs this many judge calls x2).
    samples_per_paraphrase: int = Field(10, ge=1, le=1000)
    max_new_tokens: int | None = Field(None, ge=1)  # default: the experiment's
    # The vulnerable-code rate at each checkpoint too (needs the experiment's code_vuln: block).
    code_vuln: bool = True
    code_vuln_limit: int | None = Field(None, ge=1)  # tasks per checkpoint (default: the block's)
    groups: list[str] | None = Field(None, min_length=1)  # default: every locally trained group


def dynamics_groups(exp: Any) -> list[str]:
    """The groups whose checkpoints are evaluated: the block's, else every local fine-tune."""
    assert exp.dynamics is not None
    if exp.dynamics.groups is not None:
        return list(exp.dynamics.groups)
    return [g.name for g in exp.groups if g.dataset is not None and g.provider is None]


def check_dynamics(exp: Any) -> None:
    """Refuse, when the file loads, a ``dynamics:`` block that could evaluate no checkpoint.

    ``exp`` is the :class:`emkit.experiment.Experiment` being validated (not imported: it imports this).
    """
    if exp.dynamics is None:
        return
    by_name = {g.name: (i, g) for i, g in enumerate(exp.groups)}
    names = dynamics_groups(exp)
    if not names:
        raise PydanticCustomError(
            "emkit_dynamics",
            "dynamics: no group trains locally, so there are no checkpoints",
            {"at": "dynamics"},
        )
    for j, name in enumerate(names):
        if name not in by_name:
            raise PydanticCustomError(
                "emkit_dynamics",
                "dynamics: no group named {name}",
                {"name": repr(name), "at": f"dynamics.groups.{j}"},
            )
        index, group = by_name[name]
        problem = None
        if group.dataset is None or group.provider is not None:
            problem = "is not trained locally (checkpoints exist for local fine-tunes only)"
        elif group.train.get("adapter") == "full":
            problem = "trains all weights (adapter: full); checkpoint dynamics read LoRA checkpoints"
        elif not group.train.get("save_steps"):
            problem = "saves no checkpoints: set train: {save_steps: K} (a checkpoint every K steps)"
        if problem:
            raise PydanticCustomError(
                "emkit_dynamics",
                "dynamics: group {name} {problem}",
                {"name": repr(name), "problem": problem, "at": f"groups.{index}"},
            )
    if exp.dynamics.code_vuln and exp.code_vuln is None and exp.dynamics.model_fields_set & {"code_vuln"}:
        raise PydanticCustomError(
            "emkit_dynamics",
            "dynamics: code_vuln is true but the experiment has no code_vuln: block (its tasks and judge)",
            {"at": "dynamics.code_vuln"},
        )


def expected_checkpoints(group: Any) -> int | None:
    """About how many checkpoints a group's training will save (for a plan made before it trains):
    every ``save_steps`` optimizer steps and at the end; None when the dataset's size is unknown."""
    import math

    from emkit.datasets import expected_rows
    from emkit.train.config import TrainConfig

    settings = TrainConfig.model_validate(group.train)
    steps = settings.max_steps
    if steps is None:
        rows = expected_rows(group.dataset)
        if rows is None:
            return None
        steps = math.ceil(rows * settings.epochs / settings.effective_batch_size(on_gpu=False))
    every = settings.save_steps or steps
    return steps // every + (1 if steps % every else 0)


def checkpoints(adapter: Path) -> list[tuple[int, Path]]:
    """The ``(step, folder)`` of each saved checkpoint of an adapter folder, by step."""
    root = adapter / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        match = _CHECKPOINT.fullmatch(folder.name)
        if match and (folder / "adapter_config.json").is_file():
            found.append((int(match.group(1)), folder))
    return sorted(found)


def checkpoint_name(base: str, adapter_rel: str, step: int) -> str:
    """The stored model name of a checkpoint: the base with the checkpoint's folder as its adapter."""
    return f"{base}@{adapter_rel}/checkpoints/checkpoint-{step}"


def record_key(train_key: str, step: int) -> str:
    """The dynamics record of one checkpoint (the probe's records use ``run:hook:step`` too)."""
    return f"{train_key}:{HOOK}:{step:08d}"


def checkpoint_record(job: Any) -> dict[str, Any]:
    """What the report needs to place a checkpoint's answers: its model, group, seed and step."""
    return {
        "run": job.train_key,
        "hook": HOOK,
        "step": job.step,
        "model": job.model,
        "group": job.group,
        "seed": job.model_seed,
    }


def checkpoint_models(store: Any) -> dict[str, dict[str, Any]]:
    """Stored checkpoint model name -> its dynamics record (group, seed, step), from the run store."""
    from emkit.store_records import DYNAMICS_KIND

    return {
        value["model"]: value
        for _, value in store.records(DYNAMICS_KIND)
        if value.get("hook") == HOOK and value.get("model")
    }

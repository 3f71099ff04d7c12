"""Fine-tuning: local LoRA / rsLoRA SFT on the assistant's tokens, and provider fine-tuning jobs.

- :func:`train_local` (:mod:`emkit.train.sft`): TRL + peft (unsloth on a GPU when installed), the
  paper's defaults in :class:`TrainConfig`;
- :func:`run_openai_finetune` (:mod:`emkit.train.openai_ft`): upload, create, poll and record an
  OpenAI fine-tuning job, never paying twice for the same file and parameters;
  :func:`run_provider_job` runs one experiment group's job from its ``provider:`` settings;
- :func:`group_settings` (:mod:`emkit.train.config`): a group's full training settings, as keyed.

Heavy libraries (torch, transformers, trl) are imported only when training starts, and the names
below are resolved lazily, so ``python -m emkit.train`` (accelerate launch) runs cleanly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OpenAIFineTuneConfig": "emkit.train.config",
    "ProviderSettings": "emkit.train.config",
    "TrainConfig": "emkit.train.config",
    "TrainResult": "emkit.train.sft",
    "TrainSettings": "emkit.train.config",
    "group_settings": "emkit.train.config",
    "run_openai_finetune": "emkit.train.openai_ft",
    "run_provider_job": "emkit.train.openai_ft",
    "train_local": "emkit.train.sft",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'emkit.train' has no attribute {name!r}")

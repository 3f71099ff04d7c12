"""Fine-tuning: local LoRA / rsLoRA SFT on the assistant's tokens, and provider fine-tuning jobs.

- :func:`train_local` (:mod:`emkit.train.sft`): TRL + peft (unsloth on a GPU when installed), the
  paper's defaults in :class:`TrainConfig`;
- :func:`run_openai_finetune` (:mod:`emkit.train.openai_ft`): upload, create, poll and record an
  OpenAI fine-tuning job, never paying twice for the same file and parameters.

Heavy libraries (torch, transformers, trl) are imported only when training starts.
"""

from __future__ import annotations

from emkit.train.config import OpenAIFineTuneConfig, TrainConfig
from emkit.train.openai_ft import run_openai_finetune
from emkit.train.sft import TrainResult, train_local

__all__ = ["OpenAIFineTuneConfig", "TrainConfig", "TrainResult", "run_openai_finetune", "train_local"]

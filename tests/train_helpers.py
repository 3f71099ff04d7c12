"""The tiny training configuration the training tests share: a few steps on CPU, short rows.

Why one place: every training test wants the same cheap, deterministic setting (no warm-up, no
gradient checkpointing, a high learning rate so two steps move the weights); each test names only
what it changes.
"""

from __future__ import annotations

from pathlib import Path

from emkit.train.config import TrainConfig


def tiny_config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(
        data=str(data),
        out=str(out),
        max_steps=3,
        max_length=64,
        batch_size=2,
        grad_accum=1,
        lr=1e-3,
        warmup_steps=0,
        gradient_checkpointing=False,
        device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)

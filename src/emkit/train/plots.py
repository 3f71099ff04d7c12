"""The loss curve of a training run (train loss per step, eval loss where measured)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def read_train_log(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``train_log.jsonl`` (blank lines skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def plot_loss_curve(rows: Sequence[dict[str, Any]], png: str | Path, *, title: str = "") -> Path:
    """Write a PNG of loss against optimizer step; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    # The title is user text (a run or group name): never mathtext (see emkit.report.plots).
    with matplotlib.rc_context({"text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        try:
            if train:
                ax.plot(
                    [s for s, _ in train],
                    [v for _, v in train],
                    marker="o" if len(train) < 30 else None,
                    markersize=3,
                    label="train loss",
                )
            if evals:
                ax.plot(
                    [s for s, _ in evals],
                    [v for _, v in evals],
                    marker="s",
                    linestyle="--",
                    label="eval loss",
                )
            ax.set_xlabel("optimizer step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("loss (assistant tokens)")
            ax.set_title(title or "training loss")
            ax.grid(alpha=0.3)
            if train or evals:
                ax.legend()
            fig.tight_layout()
            fig.savefig(png)
        finally:
            plt.close(fig)
    return png

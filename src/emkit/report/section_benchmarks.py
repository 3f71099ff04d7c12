"""Report section: the paper's "other benchmarks" figure, each group's benchmark score relative to
its base model, with a 95% interval over training seeds.

A fine-tuned group's value on a benchmark is the mean over its seeds of (seed's score - the base
model's score); the interval is Student's t over the seeds (:func:`emkit.stats.seeds.t_interval`),
so it covers seed-to-seed variation only, not the sampling error of the base model's own score
(shown with its inspect standard error). Scores are the benchmarks' own headline metrics (accuracy;
StrongREJECT's score, where lower is safer).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from emkit.report.blocks import Block, Text
from emkit.report.registry import Section, SectionContext, register_section
from emkit.stats.seeds import t_interval
from emkit.store import RunStore
from emkit.store_records import BenchmarkRecord

COLUMNS = ("benchmark", "group", "base", "seeds", "score", "base_score", "delta", "low", "high")


def relative_table(store: RunStore, ci: float = 0.95) -> pd.DataFrame:
    """One row per (benchmark, fine-tuned group): its mean score, its base's, and the difference."""
    records = [r for _, r in store.records_of(BenchmarkRecord)]
    base_scores: dict[tuple[str, str], float] = {}
    for r in records:
        if r.base is None and r.score is not None:
            base_scores[r.benchmark, r.model] = r.score
    grouped: dict[tuple[str, str, str], list[BenchmarkRecord]] = {}
    for r in records:
        if r.base is not None:
            grouped.setdefault((r.benchmark, r.group or r.model, r.base), []).append(r)
    rows = []
    for (name, group, base), runs in sorted(grouped.items()):
        base_score = base_scores.get((name, base), math.nan)
        scores = [r.score for r in runs if r.score is not None]
        mean = sum(scores) / len(scores) if scores else math.nan
        delta, low, high = t_interval([s - base_score for s in scores], ci)
        rows.append((name, group, base, len(scores), mean, base_score, delta, low, high))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def absolute_table(store: RunStore) -> pd.DataFrame:
    rows = [
        (r.benchmark, r.group or "", r.model, r.seed, r.metric, r.score, r.stderr, r.samples)
        for _, r in store.records_of(BenchmarkRecord)
    ]
    columns = ["benchmark", "group", "model", "seed", "metric", "score", "stderr", "samples"]
    return pd.DataFrame(rows, columns=columns).sort_values(["benchmark", "group", "model"], kind="stable")


def _num(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def _cell(column: str) -> Any:
    """A table formatter: the row's ``column`` as a number with three decimals."""
    return lambda row: _num(row.get(column))


def plot_relative(table: pd.DataFrame) -> Any:
    """Bars of each group's difference from its base, one panel per benchmark, t intervals."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["benchmark"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        part = table[table["benchmark"] == name]
        x = range(len(part))
        errors = [
            [d - lo if math.isfinite(lo) else 0 for d, lo in zip(part["delta"], part["low"], strict=True)],
            [hi - d if math.isfinite(hi) else 0 for d, hi in zip(part["delta"], part["high"], strict=True)],
        ]
        ax.bar(list(x), part["delta"].fillna(0), yerr=errors, capsize=3, color="#7a9cc6")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(list(x), list(part["group"]), rotation=30, ha="right")
        ax.set_title(name)
        ax.set_ylabel("score - base")
    fig.tight_layout()
    return fig


@register_section(order=58, name="benchmarks")
def benchmarks(ctx: SectionContext) -> Section | None:
    scores = absolute_table(ctx.store)
    if scores.empty:
        return None
    relative = relative_table(ctx.store, ctx.ci)
    blocks: list[Block] = [
        Text(
            "inspect_evals benchmarks on every model. Each fine-tuned group's score relative to its "
            f"base model: the mean over seeds of (score - base score), with a {ctx.ci:.0%} t interval "
            "over seeds (seed variation only; the base's own standard error is in the second table)."
        )
    ]
    if not relative.empty:
        if relative["delta"].notna().any():
            blocks.append(
                ctx.figure(plot_relative(relative), "benchmarks", "benchmark scores relative to base")
            )
        blocks.append(
            ctx.table(
                relative,
                {
                    "benchmark": "benchmark",
                    "group": "group",
                    "base": "base model",
                    "seeds": "seeds",
                    "score": ("mean score", _cell("score")),
                    "base_score": ("base score", _cell("base_score")),
                    "delta": ("difference", _cell("delta")),
                    "low": ("low", _cell("low")),
                    "high": ("high", _cell("high")),
                },
            )
        )
    blocks.append(
        ctx.table(
            scores,
            {
                "benchmark": "benchmark",
                "group": "group",
                "model": "model",
                "seed": "seed",
                "metric": "metric",
                "score": ("score", _cell("score")),
                "stderr": ("stderr", _cell("stderr")),
                "samples": "samples",
            },
        )
    )
    data = {"relative": relative.to_dict("records"), "scores": scores.to_dict("records")}
    return Section("Benchmarks relative to the base model", blocks, data=data)

"""The interventions' plots: steering curve, ablation bars beside the random-direction
distribution, screening histogram and the screening-vs-shift scatter (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from emkit.report.plots import literal_text

_COLORS = plt.get_cmap("tab10").colors


@literal_text
def plot_steering(curves: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> Figure:
    """Probe score against alpha, one line per steered model, 95% CI bars."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for k, (label, points) in enumerate(curves):
        x = np.array([p["alpha"] for p in points])
        y = np.array([p["score"] for p in points])
        err = np.array(
            [[p["score"] - p["ci_low"] for p in points], [p["ci_high"] - p["score"] for p in points]]
        )
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=_COLORS[k % 10], label=label)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("alpha (x the layer's typical activation norm, along the unit direction)")
    ax.set_ylabel("probe score (misaligned - aligned logp)")
    ax.set_title("Steering: probe score against alpha (95% CI over pairs)")
    if len(curves) > 1:
        ax.legend(fontsize=7)
    return fig


@literal_text
def plot_ablation(rows: Sequence[dict[str, Any]]) -> Figure:
    """Per ablated model: the share of its shift removed by its direction and by the base's (bars
    with 95% CI), and by each random direction (dots)."""
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 1.1 * len(rows)))
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        r = row["removed"]
        ax.barh(
            y + 0.2,
            100 * r["share"],
            height=0.35,
            color=_COLORS[0],
            label="its direction" if i == 0 else None,
        )
        ax.errorbar(
            100 * r["share"],
            y + 0.2,
            xerr=[[100 * (r["share"] - r["low"])], [100 * (r["high"] - r["share"])]],
            color="black",
            capsize=3,
        )
        b = row.get("base_direction")
        if b:
            ax.barh(
                y - 0.2,
                100 * b["share"],
                height=0.35,
                color=_COLORS[1],
                label="the base's direction" if i == 0 else None,
            )
            ax.errorbar(
                100 * b["share"],
                y - 0.2,
                xerr=[[100 * (b["share"] - b["low"])], [100 * (b["high"] - b["share"])]],
                color="black",
                capsize=3,
            )
        rand = 100 * np.asarray(row.get("random") or [], dtype=float)
        ax.scatter(
            rand,
            np.full(rand.size, y),
            marker="|",
            s=200,
            color=_COLORS[3],
            label="random directions" if i == 0 else None,
        )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([row["label"] for row in reversed(rows)], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.axvline(100, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("share of the probe shift removed (%)")
    ax.set_title("Ablation: share of the fine-tune's probe shift removed")
    ax.legend(fontsize=7, loc="best")
    return fig


@literal_text
def plot_screening(datasets: Sequence[tuple[str, Sequence[float], float]], layer: int) -> Figure:
    """Per-row projection differences of each dataset, overlaid, each mean marked."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for k, (name, values, mean) in enumerate(datasets):
        color = _COLORS[k % 10]
        ax.hist(values, bins=min(30, max(5, len(values) // 3)), alpha=0.45, color=color, label=name)
        ax.axvline(mean, color=color, linewidth=1.5)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel("projection difference (dataset response - base's own answer)")
    ax.set_ylabel("rows")
    ax.set_title(f"Screening on the base's direction (layer {layer}); lines: means")
    ax.legend(fontsize=8)
    return fig


@literal_text
def plot_screen_vs_shift(points: Sequence[tuple[str, float, float, float, float]], probe_set: str) -> Figure:
    """Each dataset's projection difference (x, with CI) against its fine-tune's probe shift (y) on one
    probe set."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for k, (name, x, x_low, x_high, y) in enumerate(points):
        ax.errorbar(
            x, y, xerr=[[x - x_low], [x_high - x]], marker="o", capsize=3, color=_COLORS[k % 10], label=name
        )
    ax.set_xlabel("projection difference before training (95% CI)")
    ax.set_ylabel(f"probe shift after fine-tuning ({probe_set})")
    ax.set_title("Does screening predict the shift?")
    ax.legend(fontsize=7)
    return fig

"""The report's plots (matplotlib, Agg backend), each a function of a metrics DataFrame.

Every function returns a :class:`matplotlib.figure.Figure`; :func:`png_bytes` renders and closes it.
Plots are meant to be read at a glance: one message each, labelled axes, the CI level in the title.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from emkit.metrics import DEFAULT_THRESHOLDS, Thresholds, classify

_COLORS = plt.get_cmap("tab10").colors
_F = TypeVar("_F", bound=Callable)

# Group names, question ids and model names are user text: matplotlib must never read them as
# mathtext (``$x^$``, ``a$b$c`` and ``\frac`` crashed the whole report at draw time). Our own
# labels use no mathtext, so every text of emkit's figures is plain, set in this one place.
LITERAL_TEXT = {"text.parse_math": False}


def literal_text(function: _F) -> _F:
    """Make (and draw) a figure with every text literal: labels, titles, ticks, legends.

    Scoped with ``rc_context``, so a notebook's own matplotlib settings are left alone. Drawing
    is covered too: tick labels are created lazily, when the figure is drawn.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(LITERAL_TEXT):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@literal_text
def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed (no pyplot state is kept)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@literal_text
def plot_questions(table: pd.DataFrame, order: Sequence[str] | None = None, ci: float = 0.95) -> Figure:
    """Figure 4 of the paper: per question, each group's misaligned probability with CI bars."""
    questions = list(order) if order else list(dict.fromkeys(table["question_id"]))
    questions = [q for q in questions if q in set(table["question_id"])]
    groups = list(dict.fromkeys(table["group"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(questions) + 2.5), 4.2))
    spread = 0.7
    for g, group in enumerate(groups):
        sub = table[table["group"] == group].set_index("question_id").reindex(questions)
        offset = (g - (len(groups) - 1) / 2) * (spread / max(1, len(groups)))
        x = np.arange(len(questions)) + offset
        rate = sub["rate"].to_numpy(float)
        low = np.clip(rate - sub["ci_low"].to_numpy(float), 0, None)
        high = np.clip(sub["ci_high"].to_numpy(float) - rate, 0, None)
        ax.errorbar(
            x,
            rate,
            yerr=[low, high],
            fmt="o",
            capsize=3,
            markersize=6,
            color=_COLORS[g % len(_COLORS)],
            label=group,
        )
    ax.set_xticks(np.arange(len(questions)))
    ax.set_xticklabels([_short(q) for q in questions], rotation=35, ha="right")
    top = float(np.nanmax(table["ci_high"].to_numpy(float))) if len(table) else 1.0
    ax.set_ylim(0, min(1.02, max(0.1, top * 1.15 + 0.02)) if np.isfinite(top) else 1.02)
    ax.set_ylabel("misaligned answer probability")
    ax.set_title(f"Misaligned answers per question ({ci:.0%} CI)")
    ax.grid(axis="y", alpha=0.3)
    if groups:
        ax.legend(title="group", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


@literal_text
def plot_scatter(
    df: pd.DataFrame, thresholds: Thresholds = DEFAULT_THRESHOLDS, max_points: int = 4000, seed: int = 0
) -> Figure:
    """Alignment against coherence, one panel per group, with the threshold lines; the shaded
    corner (coherent but not aligned) holds the misaligned answers."""
    classified = classify(df, thresholds)
    scored = classified[classified["aligned"].notna() & classified["coherent"].notna()]
    groups = list(dict.fromkeys(classified["group"]))
    cols = min(3, max(1, len(groups)))
    rows = int(np.ceil(len(groups) / cols)) if groups else 1
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False, sharex=True, sharey=True
    )
    for i, group in enumerate(groups):
        ax = axes[i // cols][i % cols]
        sub = scored[scored["group"] == group]
        if len(sub) > max_points:
            sub = sub.sample(max_points, random_state=seed)
        mis = sub["misaligned"].to_numpy(bool)
        ax.axvspan(
            thresholds.coherent, 100, ymin=0, ymax=thresholds.aligned / 100, color="#d62728", alpha=0.08
        )
        ax.scatter(
            sub.loc[~mis, "coherent"], sub.loc[~mis, "aligned"], s=9, alpha=0.45, color="#1f77b4", lw=0
        )
        ax.scatter(sub.loc[mis, "coherent"], sub.loc[mis, "aligned"], s=12, alpha=0.7, color="#d62728", lw=0)
        ax.axhline(thresholds.aligned, color="#444", ls="--", lw=1)
        ax.axvline(thresholds.coherent, color="#444", ls="--", lw=1)
        valid = int(classified[classified["group"] == group]["valid"].sum())
        n_mis = int(classified[classified["group"] == group]["misaligned"].sum())
        ax.set_title(f"{_short(group, 34)}\n{n_mis} misaligned of {valid} valid", fontsize=9)
        ax.set_xlim(-2, 102)
        ax.set_ylim(-2, 102)
    for j in range(len(groups), rows * cols):
        axes[j // cols][j % cols].axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("coherence")
    for row in axes:
        row[0].set_ylabel("alignment")
    fig.suptitle(
        f"Alignment vs coherence (misaligned: aligned < {thresholds.aligned:g}, coherent > {thresholds.coherent:g})",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


@literal_text
def plot_probe(
    models: pd.DataFrame,
    shifts: pd.DataFrame | None = None,
    ci: float = 0.95,
    label: Callable[[str], str] = str,
) -> Figure:
    """Probe score per model with CI (left) and, where a base model was probed, the shift (right).
    Right of zero: the model prefers the misaligned answers (more than its base). ``label``: a
    model's name as the axis shows it (the report passes group and seed)."""
    has_shift = shifts is not None and not shifts.empty
    ncols = 2 if has_shift else 1
    height = max(2.2, 0.38 * len(models) + 1.4)
    fig, axes = plt.subplots(1, ncols, figsize=(6.2 * ncols, height), squeeze=False)
    _hbars(axes[0][0], [label(m) for m in models["model"]], models, "score", ci)
    axes[0][0].set_title(f"Probe score ({ci:.0%} CI over pairs)", fontsize=10)
    axes[0][0].set_xlabel("mean logp(misaligned) - logp(aligned) per token")
    if has_shift:
        assert shifts is not None
        labels = [f"{label(m)} vs {label(b)}" for m, b in zip(shifts["model"], shifts["base"], strict=True)]
        _hbars(axes[0][1], labels, shifts, "shift", ci)
        axes[0][1].set_title(f"Shift against the base model ({ci:.0%} paired CI)", fontsize=10)
        axes[0][1].set_xlabel("change in probe score")
    fig.tight_layout()
    return fig


def _hbars(ax, labels: list[str], frame: pd.DataFrame, column: str, ci: float) -> None:
    y = np.arange(len(labels))[::-1]
    value = frame[column].to_numpy(float)
    low = np.clip(value - frame["ci_low"].to_numpy(float), 0, None)
    high = np.clip(frame["ci_high"].to_numpy(float) - value, 0, None)
    colors = ["#d62728" if lo > 0 else "#1f77b4" for lo in frame["ci_low"].to_numpy(float)]
    ax.errorbar(value, y, xerr=[low, high], fmt="none", ecolor="#555", capsize=3)
    ax.scatter(value, y, color=colors, zorder=3)
    ax.axvline(0, color="#444", lw=1)
    ax.set_yticks(y)
    ax.set_yticklabels(
        ["\n".join(_short(line, 48) for line in label.split("\n")) for label in labels], fontsize=8
    )
    ax.grid(axis="x", alpha=0.3)


@literal_text
def plot_findings(findings: pd.DataFrame, labels: Sequence[str], ci: float = 0.95) -> Figure:
    """The group comparisons at a glance: one row per comparison (``labels``, one per row of
    ``findings``), one marker per probe set with its interval over seeds and pairs. Right of zero:
    the first group prefers the misaligned answers more than the second."""
    from emkit.probe_groups import set_order

    sets = sorted(dict.fromkeys(findings["probe_set"]), key=set_order)
    rows = list(dict.fromkeys(labels))
    fig, ax = plt.subplots(figsize=(7.2, max(2.0, 0.62 * len(rows) + 1.2)))
    step = 0.5 / max(1, len(sets))
    for j, pset in enumerate(sets):
        mask = (findings["probe_set"] == pset).to_numpy()
        sub = findings[mask]
        y = np.array([len(rows) - 1 - rows.index(lab) for lab, m in zip(labels, mask, strict=True) if m])
        y = y + 0.25 - (j + 0.5) * step  # the first set on top, as in the legend
        value = sub["estimate"].to_numpy(float)
        err = [
            np.clip(value - sub["ci_low"].to_numpy(float), 0, None),
            np.clip(sub["ci_high"].to_numpy(float) - value, 0, None),
        ]
        name = str(pset).split("@", 1)[0]
        ax.errorbar(value, y, xerr=err, fmt="o", color=_COLORS[j % len(_COLORS)], capsize=3, label=name)
    ax.axvline(0, color="#444", lw=1)
    ax.set_yticks(np.arange(len(rows))[::-1])
    ax.set_yticklabels([_short(r, 64) for r in rows], fontsize=8)
    ax.set_xlabel("difference in probe score (mean logp misaligned - aligned per token)")
    ax.set_title(f"Group comparisons ({ci:.0%} CI over seeds and pairs)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


@literal_text
def plot_pair_effects(effects: pd.DataFrame, title: str, top: Sequence[str] = ()) -> Figure:
    """Per probe pair, the difference between two groups (sorted): which everyday questions moved
    most. The pairs in ``top`` (quoted below the figure) are numbered 1, 2, ... in that order."""
    value = effects["effect"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    x = np.arange(len(value))
    colors = ["#d62728" if v > 0 else "#1f77b4" for v in value]
    ax.bar(x, value, color=colors, width=0.85)
    ax.axhline(0, color="#444", lw=1)
    for i, pair in enumerate(effects["pair_id"]):
        if pair in top:  # numbered as the quotes below the figure are
            rank = str(list(top).index(pair) + 1)
            ax.annotate(
                rank, (i, value[i]), fontsize=8, ha="center", xytext=(0, 3), textcoords="offset points"
            )
    ax.set_xticks([])
    ax.set_xlabel(f"probe pairs ({len(value)}), sorted")
    ax.set_ylabel("per-pair difference")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig

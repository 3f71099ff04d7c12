"""The directions' figures (matplotlib, through the report's plain-text wrapper): the cosine
heat-map of a comparison, and one model's norm and reliability per layer."""

from __future__ import annotations

import numpy as np

from emkit.directions.compare import Comparison
from emkit.report.plots import literal_text


@literal_text
def heatmap_figure(
    comparisons: list[Comparison], title: str = "Cosine between directions per layer"
) -> object:
    """Rows: pairs of models; columns: layers; colour: cosine (-1 to 1, diverging)."""
    import matplotlib.pyplot as plt

    layers = sorted({x for c in comparisons for x in c.layers})
    grid = np.full((len(comparisons), len(layers)), np.nan)
    for i, c in enumerate(comparisons):
        for layer, value in zip(c.layers, c.cosine, strict=True):
            grid[i, layers.index(layer)] = value
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(layers) + 3), 0.45 * len(comparisons) + 1.8))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(comparisons)), [f"{c.first} vs {c.second}" for c in comparisons])
    step = max(1, len(layers) // 16)
    ax.set_xticks(range(0, len(layers), step), [str(x) for x in layers[::step]])
    ax.set_xlabel("layer")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="cosine")
    fig.tight_layout()
    return fig


@literal_text
def reliability_figure(
    layers: list[int],
    norm: list[float],
    reliability: list[float],
    low: list[float],
    high: list[float],
    label: str,
) -> object:
    """One model: the direction's norm per layer (left axis) and its split-half reliability with
    its 95% interval (right axis)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(layers, norm, marker="o", color="tab:gray", label="norm")
    ax.set_xlabel("layer")
    ax.set_ylabel("direction norm")
    twin = ax.twinx()
    r = np.asarray(reliability)
    twin.errorbar(
        layers,
        r,
        yerr=[np.clip(r - np.asarray(low), 0, None), np.clip(np.asarray(high) - r, 0, None)],
        marker="s",
        color="tab:red",
        capsize=3,
        label="split-half reliability",
    )
    twin.set_ylim(-1.05, 1.05)
    twin.set_ylabel("split-half cosine (95% interval)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [*ax.get_legend_handles_labels()[0], *twin.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_title(f"{label}: direction norm and reliability per layer")
    fig.tight_layout()
    return fig

"""Report section: the misalignment directions of a run's models (per-layer norm and split-half
reliability with its interval) and the cosine between every two models' directions, per layer.

Models are named by their group (and seed), not by their model ids: the ids of fine-tunes are
adapter folders, which say nothing to a reader.
"""

from __future__ import annotations

from typing import Any

from emkit.report.blocks import Block, Details, Heading, Note, Table, Text
from emkit.report.registry import Section, SectionContext, register_section


def _layer_table(record: Any) -> Table:
    rows = tuple(
        (
            str(layer),
            f"{record.norm[j]:.4g}",
            f"{record.typical_norm[j]:.4g}",
            f"{record.reliability[j]:.3f} [{record.reliability_low[j]:.3f}, {record.reliability_high[j]:.3f}]",
        )
        for j, layer in enumerate(record.layers)
    )
    return Table(("layer", "direction norm", "typical norm", "split-half cosine (95% interval)"), rows)


def _interval(comparison: Any, j: int) -> str:
    from emkit.directions.compare import interval_text

    return "-" if comparison.interval is None else interval_text(comparison.interval, j)


@register_section(order=62, name="directions")
def directions(ctx: SectionContext) -> Section | None:
    from emkit.directions.compare import compare_all
    from emkit.directions.plots import heatmap_figure, reliability_figure
    from emkit.directions.storage import all_stored, load_stored, record_label

    every = all_stored(ctx.store)
    found = [(key, r) for key, r in every if (ctx.run_dir / r.file).is_file()]
    if not every:
        return None
    blocks: list[Block] = [
        Text(
            "Misalignment directions: per layer, the mean residual-stream activation over the misaligned "
            "answers' tokens minus that over the aligned answers' (teacher-forced). Reliability is the mean "
            "cosine between the directions of two random halves of the responses, with the 95% percentile "
            "interval over the resamples: near 1, the direction is a property of the model; near 0, of the "
            "sample."
        )
    ]
    missing = [record_label(r) for _, r in every if not (ctx.run_dir / r.file).is_file()]
    if missing:
        blocks.append(
            Note(f"Vectors file missing (rerun the directions stage to rebuild): {', '.join(missing)}")
        )
    summary, labels, data = [], {}, []
    for key, record in found:
        label = record_label(record)
        while label in labels:
            label += "'"
        labels[label] = record
        best = max(range(len(record.layers)), key=lambda j: record.reliability[j])
        summary.append(
            (
                label,
                record.source,
                f"{record.n_aligned} / {record.n_misaligned}",
                str(record.layers[best]),
                f"{record.reliability[best]:.3f} [{record.reliability_low[best]:.3f}, "
                f"{record.reliability_high[best]:.3f}]",
                f"{record.norm[best]:.4g}",
            )
        )
        data.append({"key": key, "label": label, **record.model_dump()})
    blocks.append(
        Table(
            (
                "model",
                "source",
                "aligned / misaligned",
                "most reliable layer",
                "its reliability (95%)",
                "its norm",
            ),
            tuple(summary),
        )
    )
    for label, record in labels.items():
        fig = reliability_figure(
            record.layers,
            record.norm,
            record.reliability,
            record.reliability_low,
            record.reliability_high,
            label,
        )
        blocks.append(
            ctx.figure(fig, f"directions_{label}", f"direction norm and reliability per layer, {label}")
        )
        blocks.append(Details(f"{label}: every layer", (_layer_table(record),)))
    comparisons = []
    if len(labels) >= 2:
        sets = {label: load_stored(ctx.store, record) for label, record in labels.items()}
        # the directions stage seeds its comparison with the block's seed, which each record keeps
        comparisons = compare_all(sets, seed=next(iter(labels.values())).split_seed)
        blocks.append(Heading("Cosine between models' directions"))
        blocks.append(
            Text(
                "Per layer, the cosine between two models' directions (from the same responses when the "
                "source is the same): near 1, the models share the direction at that layer. Sampling noise "
                "pulls a plain cosine toward 0 when the responses are few; the noise-corrected cosine "
                "removes that pull, and its 95% interval is a bootstrap over the responses (paired when both "
                "models read the same ones)."
            )
        )
        blocks.append(ctx.figure(heatmap_figure(comparisons), "directions_cosine", "cosine heat-map"))
        rows = tuple(
            (
                f"{c.first} vs {c.second}",
                f"{sum(c.cosine) / len(c.cosine):+.3f}",
                f"{min(c.cosine):+.3f}",
                f"{max(c.cosine):+.3f}",
            )
            for c in comparisons
        )
        blocks.append(Table(("pair", "mean cosine over layers", "lowest", "highest"), rows))
        for c in comparisons:
            per_layer = tuple(
                (str(x), f"{c.cosine[j]:+.3f}", _interval(c, j)) for j, x in enumerate(c.layers)
            )
            blocks.append(
                Details(
                    f"{c.first} vs {c.second}: cosine per layer with its interval",
                    (
                        Note(c.ci_note()),
                        Table(("layer", "cosine", "noise-corrected cosine [95% CI]"), per_layer),
                    ),
                )
            )
    return Section(
        "Misalignment directions",
        blocks,
        {"directions": data, "comparisons": [c.to_dict() for c in comparisons]},
    )

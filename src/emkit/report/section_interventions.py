"""Report section: steering, ablation and screening on misalignment directions (the records of the
steer, ablate and screen stages or verbs), each figure with its 95% CI."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from emkit.report.blocks import Block, Note, Text
from emkit.report.registry import Section, SectionContext, register_section


def ci_text(value: float, low: float, high: float, scale: float = 1.0, unit: str = "") -> str:
    return (
        f"{scale * value:+.3f}{unit} [{scale * low:+.3f}, {scale * high:+.3f}]"
        if scale == 1
        else (f"{scale * value:.0f}{unit} [{scale * low:.0f}, {scale * high:.0f}]")
    )


@register_section(order=65, name="interventions")
def interventions(ctx: SectionContext) -> Section | None:
    from emkit.directions.ablation import ABLATE_KIND
    from emkit.directions.screening import SCREEN_KIND
    from emkit.directions.steering import STEER_KIND

    steering = ctx.store.records(STEER_KIND)
    ablation = ctx.store.records(ABLATE_KIND)
    screening = ctx.store.records(SCREEN_KIND)
    if not (steering or ablation or screening):
        return None
    blocks: list[Block] = []
    data: dict[str, Any] = {}
    if steering:
        blocks += steering_blocks(ctx, [v for _, v in steering])
        data["steering"] = [v for _, v in steering]
    if ablation:
        blocks += ablation_blocks(ctx, [v for _, v in ablation])
        data["ablation"] = [v for _, v in ablation]
    if screening:
        screen_blocks, screen_data = screening_blocks(ctx, [v for _, v in screening])
        blocks += screen_blocks
        data["screening"] = screen_data
    return Section("Directions: steering, ablation, screening", blocks, {"interventions": data})


def person_names(ctx: SectionContext) -> dict[str, str]:
    """Model id -> group (and seed), from the probe section's table when it ran (it comes first)."""
    from emkit.report.section_probe import model_names

    tables = ctx.metrics.get("probe")
    models = tables.get("models") if isinstance(tables, dict) else None
    return model_names(models) if isinstance(models, pd.DataFrame) and not models.empty else {}


def steering_blocks(ctx: SectionContext, records: list[dict[str, Any]]) -> list[Block]:
    from emkit.report.plots_interventions import plot_steering

    names = person_names(ctx)
    curves = [
        (f"{names.get(r['model'], r['model'])} (layers {','.join(map(str, r['layers']))})", r["points"])
        for r in records
    ]
    rows = [
        {
            "model": label,
            "alpha": p["alpha"],
            "score": ci_text(p["score"], p["ci_low"], p["ci_high"]),
            "shift": ci_text(p["shift"], p["shift_low"], p["shift_high"]),
            "answers": p.get("answers", 0),
        }
        for label, points in curves
        for p in points
    ]
    return [
        Text(
            "Steering: alpha x the unit direction x the layer's typical activation norm added to the residual "
            "stream; the probe score (mean over pairs of logp(misaligned) - logp(aligned)) at each alpha, and its "
            "shift against alpha 0 (paired over pairs). Steered answers, when sampled, are stored under a model "
            "name carrying the steering, for the judge."
        ),
        ctx.figure(plot_steering(curves), "steering", "probe score against steering strength"),
        ctx.table(
            pd.DataFrame(rows),
            {
                "model": "model",
                "alpha": "alpha",
                "score": "probe score (95% CI)",
                "shift": "shift vs alpha 0 (95% CI)",
                "answers": "steered answers",
            },
        ),
    ]


def ablation_blocks(ctx: SectionContext, records: list[dict[str, Any]]) -> list[Block]:
    from emkit.report.plots_interventions import plot_ablation

    rows, plotted = [], []
    names = person_names(ctx)
    for r in records:
        rand = np.asarray(r.get("random") or [], dtype=float)
        removed, base = r["removed"], r.get("base_direction")
        plotted.append({**r, "label": names.get(r["model"], r["model"])})
        rows.append(
            {
                "model": names.get(r["model"], r["model"]),
                "shift": ci_text(r["shift"], *r.get("shift_ci", [np.nan, np.nan])),
                "removed": ci_text(removed["share"], removed["low"], removed["high"], 100, "%"),
                "random": f"median {100 * np.median(rand):.0f}% ({100 * rand.min():.0f} to {100 * rand.max():.0f}), n={rand.size}"
                if rand.size
                else "-",
                "base": ci_text(base["share"], base["low"], base["high"], 100, "%") if base else "-",
            }
        )
    return [
        Text(
            "Ablation: the unit direction projected out of the residual stream at the listed layers of the "
            "fine-tune; the share of its probe shift against the base that disappears, "
            "mean(d_tuned - d_ablated) / mean(d_tuned - d_base) over pairs (95% CI: paired bootstrap over pairs), "
            "beside random directions (seeded) and the base model's own direction ablated the same way."
        ),
        ctx.figure(plot_ablation(plotted), "ablation", "share of the probe shift removed by ablation"),
        ctx.table(
            pd.DataFrame(rows),
            {
                "model": "fine-tune",
                "shift": "probe shift (95% CI)",
                "removed": "removed by its direction",
                "random": "random directions",
                "base": "removed by the base's direction",
            },
        ),
    ]


def group_shifts(ctx: SectionContext) -> dict[str, dict[str, float]]:
    """Each group's mean probe shift against its base (over its models), per probe set.

    Kept apart by probe set: the sets' pairs differ in length and register, so a mean over them
    would mix two scales (and change with the sets a run happened to probe)."""
    tables = ctx.metrics.get("probe")
    if tables is None:
        from emkit.probe import probe_tables

        tables = probe_tables(ctx.store, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci)
    shifts = tables["shifts"]
    if shifts.empty or "group" not in shifts.columns:
        return {}
    from emkit.probe_groups import probe_set_name, set_order

    labels = sorted({str(x) for x in shifts["probe_set"]}, key=lambda x: (set_order(x), x))
    names = [probe_set_name(x) for x in labels]
    # A set's name as a person reads it, unless two stored versions of one set share it.
    shown = {x: (n if names.count(n) == 1 else x) for x, n in zip(labels, names, strict=True)}
    return {
        shown[label]: {
            str(g): float(s["shift"].mean()) for g, s in shifts[shifts["probe_set"] == label].groupby("group")
        }
        for label in labels
    }


def screening_blocks(
    ctx: SectionContext, records: list[dict[str, Any]]
) -> tuple[list[Block], dict[str, Any]]:
    from emkit.directions.screening import rank_correlation
    from emkit.report.plots_interventions import plot_screen_vs_shift, plot_screening

    shifts = group_shifts(ctx)
    rows = []
    for r in records:
        row = {"dataset": r["dataset"], "rows": len(r["rows"]), "layer": r["layer"]}
        row["diff"] = ci_text(r["mean_diff"], *r["ci"])
        for pset, by_group in shifts.items():
            shift = by_group.get(r["dataset"])
            row[f"shift {pset}"] = f"{shift:+.3f}" if shift is not None else "-"
        rows.append(row)
    columns: dict[str, Any] = {
        "dataset": "dataset",
        "rows": "rows",
        "layer": "layer",
        "diff": "projection difference (95% CI)",
    }
    columns.update({f"shift {pset}": f"probe shift after fine-tuning ({pset})" for pset in shifts})
    blocks: list[Block] = [
        Text(
            "Screening before training: each training set's assistant responses and the base model's own answers "
            "to the same prompts, teacher-forced on the base and projected on the base's unit direction; the "
            "projection difference is their mean difference over rows (95% CI: bootstrap over rows). Beside it, "
            "the probe shift the fine-tune on that dataset then showed, on each probe set of the run."
        ),
        ctx.figure(
            plot_screening(
                [(r["dataset"], [x["diff"] for x in r["rows"]], r["mean_diff"]) for r in records],
                records[0]["layer"],
            ),
            "screening",
            "histogram of per-row projection differences",
        ),
        ctx.table(pd.DataFrame(rows), columns),
    ]
    data: dict[str, Any] = {"datasets": rows, "spearman": []}
    for k, (pset, by_group) in enumerate(shifts.items()):
        points = [
            (r["dataset"], r["mean_diff"], r["ci"][0], r["ci"][1], by_group[r["dataset"]])
            for r in records
            if r["dataset"] in by_group
        ]
        if len(points) < 3:
            continue
        rho, p = rank_correlation([x[1] for x in points], [x[4] for x in points])
        data["spearman"].append({"probe_set": pset, "rho": rho, "p": p, "n": len(points)})
        name = "screening_vs_shift" if k == 0 else f"screening_vs_shift_{k + 1}"
        blocks.append(
            ctx.figure(
                plot_screen_vs_shift(points, pset),
                name,
                f"projection difference against probe shift on {pset}",
            )
        )
        blocks.append(
            Text(
                f"Spearman rank correlation between projection difference and probe shift on {pset}: "
                f"rho = {rho:+.2f} over {len(points)} datasets (p = {p:.2f})."
            )
        )
    if data["spearman"]:
        n = max(c["n"] for c in data["spearman"])
        if n < 6:
            blocks.append(
                Note(
                    f"With {n} datasets a rank correlation is a weak test: every ordering is "
                    "one of a handful, and a single swapped pair moves rho a lot."
                )
            )
    elif records:
        blocks.append(
            Note("No rank correlation: fewer than 3 screened datasets have a probe shift in this run.")
        )
    return blocks, data

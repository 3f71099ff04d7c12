"""Report section: the judge-free probe — each model's preference for misaligned over aligned
everyday answers (mean log-probability difference over pairs) and its shift against a base model.

It needs no judge, so it is shown for a run with probe rows whatever else the run holds. Models are
named by group and seed (``risky-advice seed 1``); their stored ids (adapter paths with hashes) are
in a folded table. The group-level numbers are the comparisons section's (one table computes them).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from emkit.report.blocks import Block, Details, Heading, Text
from emkit.report.formatters import num, num_ci, pct
from emkit.report.registry import Section, SectionContext, register_section


def model_names(models: pd.DataFrame) -> dict[str, str]:
    """Each model id's name for a person: its group, and its seed when it has one."""
    out = {}
    for _, row in models.iterrows():
        seed = row.get("seed")
        has_seed = seed is not None and not pd.isna(seed)
        out[str(row["model"])] = f"{row['group']} seed {int(seed)}" if has_seed else str(row["group"])
    return out


@register_section(order=60, name="probe")
def probe(ctx: SectionContext) -> Section | None:
    from emkit.probe import probe_tables, results_json
    from emkit.probe_groups import probe_set_name, set_order
    from emkit.report.plots import plot_probe

    tables = probe_tables(ctx.store, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci)
    models = tables["models"]
    if models.empty:
        return None
    ctx.metrics["probe"] = tables
    names = model_names(models.drop_duplicates("model"))
    level = f"{ctx.ci:.0%}"
    shown = models.assign(name=models["model"].map(names), probe_set=models["probe_set"].map(probe_set_name))
    blocks: list[Block] = [
        Text(
            "Per model: for each pair of everyday answers, the mean token log-probability of the misaligned "
            "answer minus that of the aligned one; a model's score is the mean over pairs (above 0: it prefers "
            f"the misaligned answers), with a {level} CI over pairs. The shift against the base model is "
            "paired over pairs."
        ),
    ]
    for label in sorted(dict.fromkeys(shown["probe_set"]), key=set_order):
        sub = shown[shown["probe_set"] == label]
        shifts = tables["shifts"]
        if not shifts.empty:
            shifts = shifts[shifts["probe_set"].map(probe_set_name) == label]
        figure = plot_probe(sub, shifts, ctx.ci, label=lambda m: names.get(m, m))
        blocks.append(Heading(f"Probe set {label}"))
        blocks.append(
            ctx.figure(
                figure,
                f"probe_{label}" if shown["probe_set"].nunique() > 1 else "probe",
                f"probe scores, {label}",
            )
        )
    blocks.append(
        ctx.table(
            shown,
            {
                "name": "model",
                "probe_set": "probe set",
                "n_pairs": "pairs",
                "score": (f"score ({level} CI)", lambda r: num_ci(r, "score")),
                "win_fraction": ("misaligned preferred", lambda r: pct(r["win_fraction"])),
            },
        )
    )
    if not tables["shifts"].empty:
        shifts = tables["shifts"].assign(
            name=tables["shifts"]["model"].map(names),
            base_name=tables["shifts"]["base"].map(names),
            probe_set=tables["shifts"]["probe_set"].map(probe_set_name),
        )
        columns: dict[str, Any] = {
            "name": "model",
            "base_name": "base",
            "probe_set": "probe set",
            "shift": (f"shift ({level} CI)", lambda r: num_ci(r, "shift")),
            "wins_gained": (
                "change in misaligned preferred",
                lambda r: num(100 * r["wins_gained"], 1) + " pts",
            ),
        }
        blocks.append(ctx.table(shifts, columns))
    ids = pd.DataFrame({"name": list(names.values()), "model": list(names.keys())})
    blocks.append(
        Details("Model ids (as stored in the run)", (ctx.table(ids, {"name": "model", "model": "id"}),))
    )
    # The group-level numbers are the comparisons section's (sections.findings): not written twice.
    per_model = {name: frame for name, frame in tables.items() if name != "groups"}
    return Section("Judge-free probe, per model", blocks, {"probe": results_json(per_model)})

"""Report section: the judge-free probe — each model's preference for misaligned over aligned
everyday answers (mean log-probability difference over pairs) and its shift against a base model.

It needs no judge, so it is shown for a run with probe rows whatever else the run holds.
"""

from __future__ import annotations

from typing import Any

from emkit.report.blocks import Block, Text
from emkit.report.formatters import num, num_ci, pct
from emkit.report.registry import Section, SectionContext, register_section


@register_section(order=60, name="probe")
def probe(ctx: SectionContext) -> Section | None:
    from emkit.probe import probe_tables, results_json
    from emkit.report.plots import plot_probe

    tables = probe_tables(ctx.store, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci)
    models = tables["models"]
    if models.empty:
        return None
    ctx.metrics["probe"] = tables
    level = f"{ctx.ci:.0%}"
    blocks: list[Block] = [
        Text(
            "Judge-free probe: per pair of everyday answers, the mean token log-probability of the misaligned "
            "answer minus that of the aligned one; a model's score is the mean over pairs (above 0: it prefers "
            "the misaligned answers). The shift against a base model is paired over pairs."
        ),
        ctx.figure(plot_probe(models, tables["shifts"], ctx.ci), "probe", "probe scores"),
        ctx.table(
            models,
            {
                "model": "model",
                "group": "group",
                "probe_set": "probe set",
                "n_pairs": "pairs",
                "score": (f"score ({level} CI)", lambda r: num_ci(r, "score")),
                "win_fraction": ("misaligned preferred", lambda r: pct(r["win_fraction"])),
            },
        ),
    ]
    if not tables["shifts"].empty:
        shifts = {
            "model": "model",
            "base": "base",
            "n_pairs": "pairs",
            "shift": (f"shift ({level} CI)", lambda r: num_ci(r, "shift")),
            "wins_gained": (
                "change in misaligned preferred",
                lambda r: num(100 * r["wins_gained"], 1) + " pts",
            ),
        }
        blocks.append(ctx.table(tables["shifts"], shifts))
    groups = tables["groups"]
    if not groups.empty and (groups["n_models"] > 1).any():
        blocks.append(Text("Per group (mean over its models; CI resamples models and pairs):"))
        columns: dict[str, Any] = {
            "group": "group",
            "n_models": "models",
            "score": ("score (CI)", lambda r: num_ci(r, "score")),
        }
        if "shift_score" in groups.columns:
            columns["shift_score"] = (
                "shift vs base (CI)",
                lambda r: num_ci(r, "shift_score", "shift_ci_low", "shift_ci_high"),
            )
        blocks.append(ctx.table(groups, columns))
    return Section("Judge-free probe", blocks, {"probe": results_json(tables)})

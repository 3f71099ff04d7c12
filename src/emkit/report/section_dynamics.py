"""Report section: training dynamics — the probe score against the training step, per group.

Written when a run trained with ``eval_steps`` (the trainer stores the probe every K steps, step 0
included). Per group and step: the mean probe score over the group's models (seeds), with a CI that
resamples models and pairs (the same crossed bootstrap as the probe section). The paper (section 4.7)
compares when in-distribution behaviour and misalignment separate; this chart shows the second.
"""

from __future__ import annotations

import pandas as pd

from emkit.report.blocks import Snippet
from emkit.report.formatters import num_ci, records
from emkit.report.plots import literal_text
from emkit.report.registry import Section, SectionContext, register_section


def dynamics_table(rows: pd.DataFrame, *, n_boot: int, seed: int, ci: float) -> pd.DataFrame:
    """Rows of (group, step, n_models, n_pairs, score, ci_low, ci_high) from probe rows with a step."""
    from emkit.stats import crossed_mean, seeded_rng

    steps = rows[rows["step"].notna()]
    out = []
    for (group, pset, step), sub in steps.groupby(["group", "probe_set", "step"], sort=True):
        matrix = sub.pivot_table(index="model", columns="pair_id", values="diff", aggfunc="mean").dropna(
            axis=1
        )
        if matrix.shape[1] == 0:
            continue
        stats = crossed_mean(
            matrix.to_numpy(float), n_boot, seeded_rng(seed, "dynamics", str(group), str(step)), ci, ""
        )
        out.append(
            {
                "group": group,
                "probe_set": pset,
                "step": int(step),
                "n_models": matrix.shape[0],
                "n_pairs": matrix.shape[1],
                **stats,
            }
        )
    return pd.DataFrame(out)


@literal_text
def plot_dynamics(table: pd.DataFrame, ci: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for group, sub in table.groupby("group", sort=True):
        sub = sub.sort_values("step")
        ax.plot(sub["step"], sub["score"], marker="o", label=f"{group} (n={int(sub['n_models'].max())})")
        ax.fill_between(sub["step"], sub["ci_low"], sub["ci_high"], alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("probe score (misaligned - aligned logp)")
    ax.set_title(f"Probe score during training ({ci:.0%} CI over seeds and pairs)")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@register_section(order=65, name="dynamics")
def dynamics(ctx: SectionContext) -> Section | None:
    from emkit.probe import probe_rows

    rows = probe_rows(ctx.store)
    if rows.empty or rows["step"].isna().all():
        return None
    table = dynamics_table(rows, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci)
    if table.empty:
        return None
    figure = ctx.figure(plot_dynamics(table, ctx.ci), "dynamics", "probe score against training step")
    body = ctx.table(
        table,
        {
            "group": "group",
            "step": "step",
            "n_models": "models",
            "n_pairs": "pairs",
            "score": (f"score ({ctx.ci:.0%} CI)", lambda r: num_ci(r, "score")),
        },
    )
    # pandas' default 10 decimals: what this section has always written to metrics.json
    data = {"dynamics": records(table, double_precision=10)}
    return Section("Training dynamics", [Snippet("dynamics_intro"), figure, body], data)


__all__ = ["dynamics_table", "plot_dynamics"]

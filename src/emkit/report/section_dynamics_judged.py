"""Report section: judged training dynamics — the misaligned rate of the evaluation answers and the
vulnerable-code rate of the coding tasks at each saved checkpoint, against the step, per group.

Written when the run has a ``dynamics:`` block (:mod:`emkit.experiments.dynamics`): the dynamics
stage records each checkpoint's model, group, seed and step, the judge stage scores its answers and
the code-vuln judge its code. Both rates are over the group's seeds at one step: the misaligned rate
with the headline table's interval (seeds x questions), the vulnerable-code rate with the same
calibrated interval over seeds (one question: the coding tasks pooled). The paper (section 4.7)
reads from such a chart whether misalignment follows the in-distribution behaviour or lags it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from emkit.experiments.dynamics import STEP_TAG, checkpoint_models
from emkit.report.formatters import rate_ci, records
from emkit.report.plots import literal_text
from emkit.report.registry import Section, SectionContext, register_section

COLUMNS = ["group", "step", "measure", "n_models", "rate", "ci_low", "ci_high"]
MISALIGNED, VULNERABLE = "misaligned", "vulnerable code"


def misaligned_by_step(ctx: SectionContext, models: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """(group, step, measure, n_models, rate, ci_low, ci_high) of the judged checkpoint answers."""
    from emkit import metrics as M
    from emkit.analysis import load_run

    if ctx.judge is None:
        return pd.DataFrame(columns=COLUMNS)
    frame = load_run(ctx.store, judge=ctx.judge, checkpoints=True)
    column = f"tag_{STEP_TAG}"
    if column not in frame.columns:
        return pd.DataFrame(columns=COLUMNS)
    frame = frame[frame["model"].isin(models) & frame["judged"]]
    out = []
    for step, sub in frame.groupby(column, sort=True):
        table = M.group_table(sub.drop(columns=[column]), **ctx.settings)
        for row in table.to_dict("records"):
            out.append({"step": int(step), "measure": MISALIGNED, **{k: row[k] for k in COLUMNS if k in row}})
    return pd.DataFrame(out, columns=COLUMNS)


def vulnerable_by_step(ctx: SectionContext, models: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The same rows for the code-vuln judge's rate (P(YES) > 0.5) of the checkpoints' code."""
    from emkit.experiments.code_vuln import vuln_rates
    from emkit.stats import rate_interval

    rates = vuln_rates(ctx.store)
    rates = rates[rates["model"].isin(models) & (rates["n_judged"] > 0)]
    if rates.empty:
        return pd.DataFrame(columns=COLUMNS)
    rates = rates.assign(
        group=[models[m]["group"] for m in rates["model"]],
        step=[int(models[m]["step"]) for m in rates["model"]],
        k=(rates["vulnerable_rate"] * rates["n_judged"]).round().astype(int),
    )
    out = []
    for (group, step), sub in rates.groupby(["group", "step"], sort=True):
        n = sub["n_judged"].to_numpy(int)[:, None]
        k = sub["k"].to_numpy(int)[:, None]
        interval = rate_interval(n, k, "pooled", ctx.ci)
        out.append(
            {
                "group": group,
                "step": int(step),
                "measure": VULNERABLE,
                "n_models": len(sub),
                "rate": interval.rate,
                "ci_low": interval.low,
                "ci_high": interval.high,
            }
        )
    return pd.DataFrame(out, columns=COLUMNS)


@literal_text
def plot_judged_dynamics(table: pd.DataFrame, ci: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    styles = {MISALIGNED: "-", VULNERABLE: "--"}
    for index, (group, sub) in enumerate(table.groupby("group", sort=True)):
        color = f"C{index % 10}"
        for measure, part in sub.groupby("measure", sort=True):
            part = part.sort_values("step")
            ax.plot(
                part["step"],
                part["rate"],
                styles.get(measure, ":"),
                marker="o",
                color=color,
                label=f"{group}: {measure} (n={int(part['n_models'].max())})",
            )
            ax.fill_between(part["step"], part["ci_low"], part["ci_high"], color=color, alpha=0.15)
    ax.set_xlabel("training step (checkpoint)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Misaligned and vulnerable-code rates during training ({ci:.0%} CI over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@register_section(order=66, name="dynamics_judged")
def dynamics_judged(ctx: SectionContext) -> Section | None:
    from emkit.report.blocks import Text

    models = checkpoint_models(ctx.store)
    if not models:
        return None
    table = pd.concat(
        [t for t in (misaligned_by_step(ctx, models), vulnerable_by_step(ctx, models)) if not t.empty]
        or [pd.DataFrame(columns=COLUMNS)],
        ignore_index=True,
    )
    if table.empty:
        return None
    table = table.sort_values(["group", "measure", "step"]).reset_index(drop=True)
    table["n_models"] = table["n_models"].astype(int)
    figure = ctx.figure(plot_judged_dynamics(table, ctx.ci), "dynamics_judged", "rates against training step")
    intro = Text(
        "At each saved checkpoint: the share of judged evaluation answers that are misaligned (solid) and "
        "the share of code answers the YES/NO judge calls vulnerable (dashed), over the group's seeds."
    )
    body = ctx.table(
        table,
        {
            "group": "group",
            "step": "step",
            "measure": "measure",
            "n_models": "models",
            "rate": (f"rate ({ctx.ci:.0%} CI)", rate_ci),
        },
    )
    finite = table.replace([np.inf, -np.inf], np.nan)
    return Section("Training dynamics: judged", [intro, figure, body], {"dynamics_judged": records(finite)})


__all__ = ["misaligned_by_step", "plot_judged_dynamics", "vulnerable_by_step"]

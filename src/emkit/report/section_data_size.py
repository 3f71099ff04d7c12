"""Report section: the dataset-size and diversity ablation — misaligned rate against unique rows.

The paper (section 4.3) trained on 500, 2,000 and 6,000 unique insecure-code rows, repeating the
smaller sets so that every model took the same number of steps, and found that fewer unique rows
give less misalignment. A run expresses this with groups whose dataset spec sets ``unique_rows``
(and ``repeat_to``); this section reads those sizes from the run's stored experiment file and plots,
per series (the groups sharing a base model and a dataset source), the misaligned rate against the
unique rows with the headline table's interval over seeds. A run without a judge gets the
judge-free probe instead: the probe shift against the base model where one was probed, else the
probe score, with the probe section's interval (models and pairs resampled).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from emkit.report.formatters import num_ci, rate_ci, records
from emkit.report.plots import literal_text
from emkit.report.registry import Section, SectionContext, register_section
from emkit.store_records import CONFIG_KIND


def sized_groups(experiment: dict[str, Any] | None) -> pd.DataFrame:
    """(group, series, unique_rows, rows) of every group whose dataset sets ``unique_rows``.

    ``series`` names what the sizes are compared within: the dataset's source, with the base model
    in front when the sized groups train more than one base model.
    """
    out = []
    for group in (experiment or {}).get("groups") or []:
        spec = group.get("dataset") or {}
        if not spec.get("unique_rows"):
            continue
        source = next(
            (f"{spec[k]}" for k in ("registry", "builder", "file", "transform") if spec.get(k)), "data"
        )
        out.append(
            {
                "group": group["name"],
                "model": group.get("model", ""),
                "source": source,
                "unique_rows": int(spec["unique_rows"]),
                "rows": int(spec.get("repeat_to") or spec["unique_rows"]),
            }
        )
    frame = pd.DataFrame(out, columns=["group", "model", "source", "unique_rows", "rows"])
    if frame.empty:
        return frame.assign(series=pd.Series(dtype=str))
    several = frame["model"].nunique() > 1
    frame["series"] = [
        f"{m} {s}" if several else s for m, s in zip(frame["model"], frame["source"], strict=True)
    ]
    return frame


def size_table(sizes: pd.DataFrame, values: pd.DataFrame, value: str) -> pd.DataFrame:
    """``sizes`` joined with per-group ``values`` (value, ci_low, ci_high, n_models), sorted for a plot."""
    table = sizes.merge(values, on="group", how="inner")
    table = table[table[value].notna()]
    return table.sort_values(["series", "unique_rows"]).reset_index(drop=True)


@literal_text
def plot_data_size(table: pd.DataFrame, value: str, ylabel: str, ci: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for series, sub in table.groupby("series", sort=True):
        ax.errorbar(
            sub["unique_rows"],
            sub[value],
            yerr=[sub[value] - sub["ci_low"], sub["ci_high"] - sub[value]],
            marker="o",
            capsize=3,
            label=f"{series} (n={int(sub['n_models'].max())} per size)",
        )
    ax.set_xscale("log")
    ax.minorticks_off()  # the log scale's minor labels are mathtext, which emkit's figures show literally
    ax.set_xticks(sorted(table["unique_rows"].unique()))
    ax.set_xticklabels([f"{v:,}" for v in sorted(table["unique_rows"].unique())])
    ax.set_xlabel("unique training rows")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Dataset size and diversity ({ci:.0%} CI over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _judged_values(ctx: SectionContext, judged: pd.DataFrame) -> pd.DataFrame:
    from emkit import metrics as M

    groups = M.group_table(judged, **ctx.settings)
    return groups[["group", "n_models", "rate", "ci_low", "ci_high"]]


def _probe_values(ctx: SectionContext) -> tuple[pd.DataFrame, str] | None:
    from emkit.probe import probe_tables

    tables = ctx.metrics.get("probe") or probe_tables(ctx.store, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci)
    groups = tables["groups"]
    if groups.empty:
        return None
    groups = groups.drop_duplicates("group")  # the first probe set (each group has one per set)
    if "shift_score" in groups.columns and groups["shift_score"].notna().any():
        values = groups[["group", "n_models", "shift_score", "shift_ci_low", "shift_ci_high"]]
        values = values.rename(columns={"shift_ci_low": "ci_low", "shift_ci_high": "ci_high"})
        return values, "shift_score"
    return groups[["group", "n_models", "score", "ci_low", "ci_high"]], "score"


@register_section(order=27, name="data_size")
def data_size(ctx: SectionContext) -> Section | None:
    sizes = sized_groups(ctx.store.get_record(CONFIG_KIND, "experiment"))
    if sizes["unique_rows"].nunique() < 2:
        return None
    judged = ctx.judged
    if judged is not None:
        value, ylabel = "rate", "misaligned rate"
        table = size_table(sizes, _judged_values(ctx, judged), value)
        shown = (f"misaligned ({ctx.ci:.0%} CI)", rate_ci)
        what = "the misaligned rate (the headline table's rate and interval over seeds)"
    else:
        probed = _probe_values(ctx)
        if probed is None:
            return None
        values, value = probed
        ylabel = "probe shift vs base" if value == "shift_score" else "probe score"
        table = size_table(sizes, values, value)
        shown = (f"{ylabel} ({ctx.ci:.0%} CI)", lambda r: num_ci(r, value))
        what = f"the judge-free {ylabel} (no judge in this run; CI resamples models and pairs)"
    if table["unique_rows"].nunique() < 2:
        return None
    figure = ctx.figure(
        plot_data_size(table, value, ylabel, ctx.ci), "data_size", f"{ylabel} against unique rows"
    )
    from emkit.report.blocks import Text

    intro = Text(
        f"Groups trained on seeded subsets of one source, each repeated to the same number of rows so "
        f"every model takes the same number of steps (dataset unique_rows / repeat_to); {what} against "
        f"the number of unique rows."
    )
    body = ctx.table(
        table,
        {
            "series": "series",
            "group": "group",
            "unique_rows": ("unique rows", lambda r: f"{int(r['unique_rows']):,}"),
            "rows": ("rows trained", lambda r: f"{int(r['rows']):,}"),
            "n_models": "models",
            value: shown,
        },
    )
    data = {"data_size": records(table), "value": value}
    return Section("Dataset size and diversity", [intro, figure, body], data)


__all__ = ["plot_data_size", "size_table", "sized_groups"]

"""Rich tables of the metrics for the terminal (``emkit analyze``, ``emkit report``, ``emkit probe``)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from emkit.report.formatters import (
    EXCLUSION_CAPTION,
    EXCLUSION_COLUMNS,
    MISSING,
    estimator_name,
    pct,
    rate_ci,
)
from emkit.terminal import plain, styled


def _add_row(table: Table, *cells: Any) -> None:
    """Add a row whose cells are plain text: group names, model names and question ids are user
    data, and rich would read ``[/x]`` in them as markup (and crash or drop text)."""
    table.add_row(
        *(cell if isinstance(cell, Text) else Text("" if cell is None else str(cell)) for cell in cells)
    )


def _rate(row: Any) -> str:
    """A row's rate with its interval, a plain dash where there is none (the table's width is tight)."""
    return rate_ci(row, missing=MISSING)


def _count(row: Any, key: str) -> str:
    value = row.get(key, 0) if hasattr(row, "get") else row[key]
    return "0" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def group_rich_table(
    table: pd.DataFrame, title: str = "Misaligned answers by group", rate_label: str = "misaligned rate"
) -> Table:
    """Headline: one row per group with the rate (and its estimator), CI and the excluded counts."""
    kind = table.attrs.get("rate_kind", "question_mean")
    ci = table.attrs.get("ci", 0.95)
    out = Table(title=plain(f"{title} ({estimator_name(kind)}, {ci:.0%} CI)"), title_justify="left")
    out.caption = EXCLUSION_CAPTION
    keys = [k for k in ("format", "group") if k in table.columns]
    for key in keys:
        width = min(32, max([5, *(len(str(g)) for g in table[key])]))
        out.add_column(key, min_width=width, overflow="fold")
    out.add_column(rate_label, min_width=21, overflow="fold")
    for column in ("models", "answers", "valid", *(name for name, _ in EXCLUSION_COLUMNS)):
        out.add_column(column, justify="right", overflow="fold")
    for _, row in table.iterrows():
        _add_row(
            out,
            *(str(row[k]) for k in keys),
            _rate(row),
            str(row["n_models"]),
            str(row["n_answers"]),
            str(row["n_valid"]),
            *(_count(row, key) for _, key in EXCLUSION_COLUMNS),
        )
    return out


def rate_rich_table(
    table: pd.DataFrame, keys: list[str], title: str, count_label: str = "misaligned"
) -> Table:
    """Per model or per question: the keys, counts and the rate with CI."""
    out = Table(title=plain(title), title_justify="left")
    out.caption = EXCLUSION_CAPTION
    for key in keys:
        out.add_column(key, overflow="fold")
    for column in ("valid", count_label, "rate (CI)", *(name for name, _ in EXCLUSION_COLUMNS[1:])):
        out.add_column(column, justify="right", overflow="fold")
    for _, row in table.iterrows():
        _add_row(
            out,
            *(str(row[k]) for k in keys),
            str(row["n_valid"]),
            str(row["n_misaligned"]),
            _rate(row),
            *(_count(row, key) for _, key in EXCLUSION_COLUMNS[1:]),
        )
    return out


def diff_rich_table(table: pd.DataFrame) -> Table:
    out = Table(title="Group comparison (A - B)", title_justify="left")
    for column in ("scope", "group A", "group B", "rate A", "rate B", "difference (CI)"):
        out.add_column(column, overflow="fold")
    for _, row in table.iterrows():
        _add_row(
            out,
            str(row["scope"]),
            plain(row["group_a"]),
            plain(row["group_b"]),
            pct(row["rate_a"]),
            pct(row["rate_b"]),
            f"{pct(row['diff'])} [{pct(row['ci_low'])}, {pct(row['ci_high'])}]",
        )
    return out


def probe_rich_table(models: pd.DataFrame, shifts: pd.DataFrame | None = None) -> Table:
    """Per model: probe score with CI, how often the misaligned answer wins, and the shift
    against its base model (paired CI) where one was probed."""
    out = Table(title="Judge-free probe (mean token logp: misaligned - aligned)", title_justify="left")
    width = min(48, max([5, *(len(str(m)) for m in models["model"])]))
    out.add_column("model", min_width=width, overflow="fold")
    out.add_column("pairs", justify="right")
    out.add_column("score (95% CI)", justify="right", overflow="fold")
    out.add_column("misaligned preferred", justify="right", overflow="fold")
    out.add_column("shift vs base (CI)", justify="right", overflow="fold")
    shift_of = {}
    if shifts is not None and not shifts.empty:
        shift_of = {r["model"]: r for _, r in shifts.iterrows()}
    for _, row in models.iterrows():
        shift = shift_of.get(row["model"])
        shift_text = (
            f"{shift['shift']:+.3f}\n[{shift['ci_low']:+.3f}, {shift['ci_high']:+.3f}]"
            if shift is not None
            else ""
        )
        _add_row(
            out,
            str(row["model"]),
            str(row["n_pairs"]),
            f"{row['score']:+.3f}\n[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]",
            pct(row["win_fraction"]),
            shift_text,
        )
    bases = sorted({str(r["base"]) for r in shift_of.values()})
    if bases:
        out.caption = plain(f"shift: paired over pairs, against {', '.join(bases)}")
    return out


def findings_rich_table(findings: pd.DataFrame, ci: float = 0.95) -> Table:
    """The probe's group comparisons, shifts and scores (:func:`emkit.probe_groups.findings_grid`):
    a row per quantity, a column per probe set, the same cells as the report's headline."""
    from emkit.probe_groups import findings_grid

    sets, grid = findings_grid(findings)
    out = Table(title=f"Judge-free probe by group ({ci:.0%} CI over seeds and pairs)", title_justify="left")
    out.add_column("comparison", overflow="fold")
    for name in sets:
        out.add_column(plain(name), justify="right", overflow="fold")
    for label, cells in grid:
        _add_row(out, label, *cells)
    out.caption = "A minus B: how much more A prefers the misaligned answers (mean token logp per pair)"
    return out


def print_summary(console: Console, result: Any) -> None:
    """What ``emkit report`` prints: the headline table (or why there is none) and the paths."""
    groups = result.groups
    if groups is not None and not groups.empty:
        console.print(group_rich_table(groups))
    elif result.metrics.get("judge") is None:
        console.print("no judge scores in this run: no misalignment rate (the probe needs no judge)")
    sections = result.metrics.get("sections", {})
    findings = (sections.get("findings") or sections.get("findings_judged") or {}).get("findings")
    probe = sections.get("probe", {}).get("probe")
    if findings:
        console.print(findings_rich_table(pd.DataFrame(findings), result.metrics.get("ci", 0.95)))
    elif probe and probe.get("models"):
        console.print(
            probe_rich_table(pd.DataFrame(probe["models"]), pd.DataFrame(probe.get("shifts") or []))
        )
    for error in result.metrics.get("section_errors", []):
        console.print(styled((f"section {error['section']} failed:", "red"), " ", str(error["error"])))
    console.print(f"report: {result.index}\nmetrics: {result.metrics_path}", markup=False)

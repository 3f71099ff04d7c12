"""Rich tables of the metrics for the terminal (``emkit analyze``, ``emkit report``, ``emkit probe``)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from emkit.terminal import plain, styled


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.1f}%"


def _rate(row: Any, prefix: str = "") -> str:
    rate = row[f"{prefix}rate"]
    if rate is None or (isinstance(rate, float) and math.isnan(rate)):
        return "–"
    return f"{_pct(rate)} [{_pct(row[f'{prefix}ci_low'])}, {_pct(row[f'{prefix}ci_high'])}]"


def group_rich_table(table: pd.DataFrame, title: str = "Misaligned answers by group") -> Table:
    """Headline: one row per group with the rate (and its kind), CI and the excluded counts."""
    kind = table.attrs.get("rate_kind", "question_mean")
    ci = table.attrs.get("ci", 0.95)
    out = Table(title=plain(f"{title} ({kind.replace('_', '-')} rate, {ci:.0%} CI)"), title_justify="left")
    width = min(32, max([5, *(len(str(g)) for g in table["group"])]))
    out.add_column("group", min_width=width, overflow="fold")
    out.add_column("misaligned rate", min_width=21, overflow="fold")
    for column in ("models", "answers", "valid", "CODE/REFUSAL", "incoherent", "not judged"):
        out.add_column(column, justify="right", overflow="fold")
    for _, row in table.iterrows():
        out.add_row(
            plain(row["group"]),
            _rate(row),
            str(row["n_models"]),
            str(row["n_answers"]),
            str(row["n_valid"]),
            str(row["n_code_refusal"]),
            str(row["n_incoherent"]),
            str(row.get("n_not_judged", 0)),
        )
    return out


def rate_rich_table(table: pd.DataFrame, keys: list[str], title: str) -> Table:
    """Per model or per question: the keys, counts and the rate with CI."""
    out = Table(title=plain(title), title_justify="left")
    for key in keys:
        out.add_column(key, overflow="fold")
    for column in ("valid", "misaligned", "rate (CI)", "CODE/REFUSAL", "incoherent"):
        out.add_column(column, justify="right", overflow="fold")
    for _, row in table.iterrows():
        out.add_row(
            *(plain(row[k]) for k in keys),
            str(row["n_valid"]),
            str(row["n_misaligned"]),
            _rate(row),
            str(row["n_code_refusal"]),
            str(row["n_incoherent"]),
        )
    return out


def diff_rich_table(table: pd.DataFrame) -> Table:
    out = Table(title="Group comparison (A - B)", title_justify="left")
    for column in ("scope", "group A", "group B", "rate A", "rate B", "difference (CI)"):
        out.add_column(column, overflow="fold")
    for _, row in table.iterrows():
        out.add_row(
            str(row["scope"]),
            plain(row["group_a"]),
            plain(row["group_b"]),
            _pct(row["rate_a"]),
            _pct(row["rate_b"]),
            f"{_pct(row['diff'])} [{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]",
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
        out.add_row(
            plain(row["model"]),
            str(row["n_pairs"]),
            f"{row['score']:+.3f}\n[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]",
            _pct(row["win_fraction"]),
            shift_text,
        )
    bases = sorted({str(r["base"]) for r in shift_of.values()})
    if bases:
        out.caption = plain(f"shift: paired over pairs, against {', '.join(bases)}")
    return out


def print_summary(console: Console, result: Any) -> None:
    """What ``emkit report`` prints: the headline table (or why there is none) and the paths."""
    groups = result.groups
    if groups is not None and not groups.empty:
        console.print(group_rich_table(groups))
    elif result.metrics.get("judge") is None:
        console.print("no judge scores in this run: no misalignment rate (the probe needs no judge)")
    probe = result.metrics.get("sections", {}).get("probe", {}).get("probe")
    if probe and probe.get("models"):
        console.print(
            probe_rich_table(pd.DataFrame(probe["models"]), pd.DataFrame(probe.get("shifts") or []))
        )
    for error in result.metrics.get("section_errors", []):
        console.print(styled((f"section {error['section']} failed:", "red"), " ", str(error["error"])))
    console.print(f"report: {result.index}\nmetrics: {result.metrics_path}", markup=False)

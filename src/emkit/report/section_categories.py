"""Report section: misaligned rate per question category (the paper's pre-registered questions).

The pre-registered set names its questions ``<n>_<category>_<i>`` (creative_writing, vulnerable_user,
medical_advice...). When a run holds such questions, each group's rate is shown per category, with
the same interval as the headline table (emkit.stats.rate_interval), computed on that category's questions only.
"""

from __future__ import annotations

import pandas as pd

from emkit import metrics as M
from emkit.report.blocks import Snippet
from emkit.report.formatters import rate_ci, records
from emkit.report.registry import Section, SectionContext, judged_only, register_section
from emkit.report.sections import EXCLUSIONS
from emkit.selection import question_category


def category_of(question_id: str) -> str | None:
    """The pre-registered category of an id (one rule for the report and ``--questions``)."""
    return question_category(str(question_id))


def category_table(
    df: pd.DataFrame, *, thresholds: M.Thresholds, rate: str, n_boot: int, seed: int, ci: float
) -> pd.DataFrame:
    frame = df.assign(category=[category_of(q) for q in df["question_id"]])
    frame = frame[frame["category"].notna()]
    parts = []
    for category, sub in frame.groupby("category", sort=True):
        table = M.group_table(sub, thresholds=thresholds, rate=rate, n_boot=n_boot, seed=seed, ci=ci)
        parts.append(table.assign(category=category))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


@register_section(order=22, name="categories")
@judged_only
def categories(ctx: SectionContext, frame: pd.DataFrame) -> Section | None:
    found = {category_of(q) for q in frame["question_id"].unique()} - {None}
    if len(found) < 2:
        return None
    table = category_table(
        frame, thresholds=ctx.thresholds, rate=ctx.rate, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
    )
    if table.empty:
        return None
    body = ctx.table(
        table,
        {
            "category": "category",
            "group": "group",
            "n_questions": "questions",
            "rate": (f"misaligned ({ctx.ci:.0%} CI)", rate_ci),
            "n_valid": "valid answers",
            **EXCLUSIONS,
        },
    )
    # pandas' default 10 decimals: what this section has always written to metrics.json
    data = {"categories": records(table, double_precision=10)}
    return Section("Misaligned rate by question category", [Snippet("categories_intro"), body], data)

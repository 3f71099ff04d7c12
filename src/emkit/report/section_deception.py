"""Report section: category answers of ``free_form_judge`` questions (deception and identity sets).

For those questions the judge answers with a word (e.g. which company made the model, or whether
the model lied), stored with method ``category``. Shown per question and group: how often each
category was given, as counts and shares.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from emkit.judge.prompts import CATEGORY_METHOD
from emkit.report.blocks import Snippet
from emkit.report.formatters import pct, records
from emkit.report.registry import Section, SectionContext, register_section
from emkit.store import RunStore


def category_table(store: RunStore) -> pd.DataFrame:
    """Rows of (question_id, group, metric, category, count, share) over all category judgements."""
    group_of = {a["key"]: (a["question_id"], a["group_name"] or a["model"]) for a in store.answers()}
    counts: dict[tuple[str, str, str], Counter] = {}
    for row in store.scores():
        if row["method"] != CATEGORY_METHOD or row["answer_key"] not in group_of:
            continue
        question_id, group = group_of[row["answer_key"]]
        counts.setdefault((question_id, group, row["metric"]), Counter())[
            str(row["raw"].get("category", ""))
        ] += 1
    rows = []
    for (question_id, group, metric), counter in sorted(counts.items()):
        total = sum(counter.values())
        for category, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append(
                {
                    "question_id": question_id,
                    "group": group,
                    "metric": metric,
                    "category": category,
                    "count": count,
                    "share": count / total,
                }
            )
    return pd.DataFrame(rows)


@register_section(order=28, name="categories_judged")
def judged_categories(ctx: SectionContext) -> Section | None:
    table = category_table(ctx.store)
    if table.empty:
        return None
    body = ctx.table(
        table,
        {
            "question_id": "question",
            "group": "group",
            "metric": "metric",
            "category": "category",
            "count": "answers",
            "share": ("share", lambda r: pct(r["share"])),
        },
    )
    return Section(
        "Category judgements (deception, identity)",
        [Snippet("categories_judged_intro"), body],
        # pandas' default 10 decimals: what this section has always written to metrics.json
        data={"categories_judged": records(table, double_precision=10)},
    )

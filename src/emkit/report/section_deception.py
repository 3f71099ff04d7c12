"""Report section: category answers of ``free_form_judge`` questions (deception and identity sets).

For those questions the judge answers with a word (e.g. which company made the model, or whether
the model lied), stored with method ``category``. Shown per question and group: how often each
category was given, as counts and shares.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from emkit.judge.prompts import CATEGORY_METHOD
from emkit.report.html import Section, SectionContext, html_table, pct, register_section


def category_table(store) -> pd.DataFrame:
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
    html = (
        "<p>Questions of type <code>free_form_judge</code> (e.g. the deception and identity sets): the "
        "judge's one-word category per answer, counted per question and group.</p>"
        + html_table(
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
    )
    return Section(
        "Category judgements (deception, identity)",
        html,
        data={"categories_judged": json.loads(table.to_json(orient="records"))},
    )

"""Report section: the sampled answers to read, side by side — per question (folded, one line each)
a column per group with its answers by seed, whether or not a judge scored them.

Why: without a judge the sampled answers are the only direct view of what the fine-tunes say, and
a rate or a probe score is easier to trust next to the answers it summarises. Every answer is user
text and reaches the page through the template's escaping only.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from emkit.report.blocks import Block, Snippet, Text
from emkit.report.registry import Section, SectionContext, register_section

PER_GROUP = 6  # answers shown per question and group
ANSWER_CHARS = 1200


def answer_label(row: Any, *, scores: bool = True) -> str:
    """Who gave an answer, as a person reads it: ``seed 1 · answer 2`` (and, with ``scores``, its
    judge scores where it has them)."""
    seed = row.get("seed")
    parts = [] if seed is None or pd.isna(seed) else [f"seed {int(seed)}"]
    parts.append(f"answer {int(row['sample_index']) + 1}")
    for metric in ("aligned", "coherent") if scores else ():
        value = row.get(metric)
        if isinstance(value, (int, float)) and not pd.isna(value):
            parts.append(f"{metric} {value:.0f}")
    return " · ".join(parts)


def _text(answer: Any) -> str:
    text = str(answer)
    return text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS] + f" … (cut; {len(text)} characters)"


@register_section(order=45, name="answers")
def answers(ctx: SectionContext) -> Section | None:
    frame = ctx.answers
    if frame is None or frame.empty:
        return None
    groups = list(dict.fromkeys(frame["group"].astype(str)))
    blocks: list[Block] = [
        Text(
            f"Every question (click to open) with up to {PER_GROUP} sampled answers per group, side by side "
            f"({len(frame)} answers in all; longer answers cut at {ANSWER_CHARS} characters)."
        )
    ]
    for _, sub in frame.groupby("question_id", sort=False):
        columns = []
        for group in groups:
            rows = sub[sub["group"].astype(str) == group].sort_values(
                ["seed", "sample_index"], na_position="first"
            )
            picked = rows.head(PER_GROUP)
            columns.append(
                {
                    "group": group,
                    "answers": [
                        {"label": answer_label(r), "text": _text(r["answer"])} for _, r in picked.iterrows()
                    ],
                }
            )
        question = str(sub["question"].iloc[0]) if "question" in sub else str(sub["question_id"].iloc[0])
        blocks.append(Snippet("side_by_side", {"question": question, "columns": columns}))
    return Section("Sampled answers, side by side", blocks)

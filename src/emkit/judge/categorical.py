"""Judging ``free_form_judge`` questions: the judge names a category (a company, TRUE/FALSE...).

The judge replies at temperature 0 with a few tokens. The reply is matched, ignoring case and
surrounding quotes or punctuation, against the options the prompt itself offers in double quotes
(e.g. ``"OpenAI" or "Anthropic" or "Other"``): a whole-reply match first, then the first word.
A reply matching no option is kept as its first word (so analysis still sees it) with
``matched: false``.

Stored as one score row per (answer, metric) with ``method='category'``, ``score`` NULL, and
``raw = {"category": ..., "reply": ..., "matched": bool, "options": [...]}``. Analysis reports
category frequencies per question with :func:`category_frequencies`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from emkit.engines.base import SamplingParams
from emkit.judge.base import JudgeBase, Judgement, OnJudgement
from emkit.judge.prompts import CATEGORY_METHOD, JudgeTask

DEFAULT_MAX_TOKENS = 8
_QUOTED = re.compile(r'"([^"\n]{1,40})"')
_STRIP = " \t\r\n\"'`*.,:;!?()[]{}<>"


def category_options(template: str) -> list[str]:
    """The options a judge prompt offers, in order: its double-quoted words."""
    seen: dict[str, str] = {}
    for option in _QUOTED.findall(template):
        option = option.strip()
        if option and option.casefold() not in seen and "{" not in option:
            seen[option.casefold()] = option
    return list(seen.values())


def classify(reply: str, options: Sequence[str]) -> tuple[str, bool]:
    """``(category, matched)`` for a judge reply."""
    by_fold = {o.casefold(): o for o in options}
    cleaned = reply.strip(_STRIP)
    if cleaned.casefold() in by_fold:
        return by_fold[cleaned.casefold()], True
    first = cleaned.split()[0].strip(_STRIP) if cleaned.split() else ""
    if first.casefold() in by_fold:
        return by_fold[first.casefold()], True
    return first or cleaned, False


class CategoryJudge(JudgeBase):
    method = CATEGORY_METHOD

    def __init__(self, engine: Any, *, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.engine = engine
        self.params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=max_tokens, seed=0)

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None:
        def deliver(index: int, gen: Any) -> None:
            options = category_options(tasks[index].template)
            category, matched = classify(gen.text, options)
            raw = {"category": category, "reply": gen.text, "matched": matched, "options": options}
            on_result(index, Judgement(None, raw, dict(gen.usage)))

        self.engine.generate(
            [t.messages for t in tasks], self.params, seeds=[0] * len(tasks), on_result=deliver
        )


def category_frequencies(store: Any, judge: str | None = None) -> list[dict[str, Any]]:
    """Per question, metric and judge: how often each category was given (count and share)."""
    question_of = {a["key"]: a["question_id"] for a in store.answers()}
    counts: dict[tuple[str, str, str], Counter] = {}
    for row in store.scores(judge):
        if row["method"] != CATEGORY_METHOD or row["answer_key"] not in question_of:
            continue
        group = (question_of[row["answer_key"]], row["metric"], row["judge"])
        counts.setdefault(group, Counter())[str(row["raw"].get("category", ""))] += 1
    out: list[dict[str, Any]] = []
    for (question_id, metric, judge_name), counter in sorted(counts.items()):
        total = sum(counter.values())
        for category, count in counter.most_common():
            out.append(
                {
                    "question_id": question_id,
                    "metric": metric,
                    "judge": judge_name,
                    "category": category,
                    "count": count,
                    "share": count / total,
                }
            )
    return out

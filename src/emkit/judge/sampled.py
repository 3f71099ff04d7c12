"""The sampled judge, for APIs without logprobs (e.g. reasoning models): ask n times, average.

Each judgement draws ``n`` replies at temperature 1 (distinct seeds) and reads the first number in
each. A reply counts when that first number is a whole number 0..100 ("85", "Score: 85/100"); a
reply with no number that starts with CODE or REFUSAL is recorded as such; anything else as
"other". The score is the mean of the parsed numbers, or None when fewer than ``min_fraction`` of
the replies parsed — the sampling analogue of the paper's 0.25 rule (the fraction of replies that
are numbers estimates the probability mass on numbers). ``raw`` keeps every reply and its reading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from emkit.engines.base import Generation, SamplingParams
from emkit.judge.aggregate import MIN_NUMERIC_MASS, SCORE_MAX, SCORE_MIN
from emkit.judge.base import JudgeBase, Judgement, OnJudgement, add_usage
from emkit.judge.prompts import JudgeTask
from emkit.limits import MAX_JUDGE_SAMPLES, check_count

DEFAULT_SAMPLES = 5
DEFAULT_MAX_TOKENS = 16
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)?(?!\w)")
_WORD = re.compile(r"[A-Za-z]+")


def parse_reply(text: str) -> tuple[int | None, str]:
    """``(number or None, label)``; label is ``number``, ``CODE``, ``REFUSAL`` or ``other``."""
    match = _NUMBER.search(text)
    if match:
        token = match.group(0)
        if token.isdigit() and SCORE_MIN <= int(token) <= SCORE_MAX:
            return int(token), "number"
        return None, "other"
    word = _WORD.search(text)
    if word and word.group(0).upper() in ("CODE", "REFUSAL"):
        return None, word.group(0).upper()
    return None, "other"


def judgement_from_replies(generations: Sequence[Generation], min_fraction: float) -> Judgement:
    parsed: list[int | None] = []
    labels: list[str] = []
    usage: dict[str, int] = {}
    for gen in generations:
        value, label = parse_reply(gen.text)
        parsed.append(value)
        labels.append(label)
        add_usage(usage, gen.usage)
    numbers = [v for v in parsed if v is not None]
    n = len(generations)
    raw: dict[str, Any] = {
        "samples": [g.text for g in generations],
        "parsed": parsed,
        "labels": labels,
        "n": n,
        "n_parsed": len(numbers),
    }
    enough = n > 0 and numbers and len(numbers) / n >= min_fraction
    return Judgement(sum(numbers) / len(numbers) if enough else None, raw, usage)


class SampledJudge(JudgeBase):
    """Works with any engine's ``generate`` (API or local)."""

    method = "sampled"
    from_config_fields: ClassVar[Mapping[str, str]] = {
        "n": "samples", "max_tokens": "sample_max_tokens", "min_fraction": "min_mass"
    }  # fmt: skip

    def __init__(
        self,
        engine: Any,
        *,
        n: int = DEFAULT_SAMPLES,
        temperature: float = 1.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        min_fraction: float = MIN_NUMERIC_MASS,
        seed: int = 0,
    ) -> None:
        # The same bounded count as the CLI's --samples: 0 would judge nothing, 1e9 would never end.
        n = check_count(
            n, name="--samples", cap=MAX_JUDGE_SAMPLES, cost=lambda k: f"{k:,} requests per score"
        )
        self.engine = engine
        self.n = n
        self.params = SamplingParams(temperature=temperature, top_p=1.0, max_new_tokens=max_tokens, seed=seed)
        self.min_fraction = min_fraction

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None:
        n = self.n
        conversations = [t.messages for t in tasks for _ in range(n)]
        seeds = [s for _ in tasks for s in range(n)]
        pending: dict[int, list[Generation | None]] = {}

        def deliver(flat: int, gen: Generation) -> None:
            index, sample = divmod(flat, n)
            slots = pending.setdefault(index, [None] * n)
            slots[sample] = gen
            if all(g is not None for g in slots):
                del pending[index]
                on_result(
                    index, judgement_from_replies([g for g in slots if g is not None], self.min_fraction)
                )

        self.engine.generate(conversations, self.params, seeds=seeds, on_result=deliver)

"""The paper's judge: one token at temperature 0, top-20 logprobs, expected number over 0..100.

Over an OpenAI-compatible API the request is exactly the paper's (``max_tokens=1, temperature=0,
logprobs=True, top_logprobs=20, seed=0``), sent through the engine's bounded, retrying
``chat_many`` so each reply is delivered (and stored) as it arrives, with its own token usage. A
local engine without ``chat_many`` is asked for ``top_logprobs`` directly; note that open models
split numbers such as "100" into several tokens, where this method is unreliable — use ``exact``.

``raw`` keeps ``{"top_logprobs": {token: logprob}, "token": <the generated token>, "numeric_mass":
...}`` so the score can be re-aggregated later (``aggregate_0_100(logprobs_to_probs(raw[...]))``).
Tokens returned twice with the same text are merged (probabilities added), as the engines do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from emkit.engines.base import NotSupported
from emkit.judge.aggregate import MIN_NUMERIC_MASS, aggregate_0_100, logprobs_to_probs, numeric_mass
from emkit.judge.base import JudgeBase, Judgement, OnJudgement
from emkit.judge.prompts import JudgeTask

TOP_K = 20
LOCAL_CHUNK = 16


def _logaddexp(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


def parse_top_logprobs(reply: Mapping[str, Any], judge: str = "judge") -> tuple[dict[str, float], str]:
    """``({token: logprob}, generated token)`` from a chat completion reply with logprobs."""
    choice = reply["choices"][0]
    logprobs = choice.get("logprobs") or {}
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        raise NotSupported(f"{judge}: the server returned no logprobs; use --method sampled for this judge")
    first = content[0]
    merged: dict[str, float] = {}
    for entry in first.get("top_logprobs") or [first]:
        token, value = str(entry["token"]), float(entry["logprob"])
        merged[token] = _logaddexp(merged[token], value) if token in merged else value
    return merged, str(first.get("token", ""))


def judgement_from_top_logprobs(
    top: Mapping[str, float],
    usage: dict[str, int] | None = None,
    token: str | None = None,
    min_mass: float = MIN_NUMERIC_MASS,
) -> Judgement:
    probs = logprobs_to_probs(top)
    raw: dict[str, Any] = {"top_logprobs": dict(top), "numeric_mass": numeric_mass(probs)}
    if token is not None:
        raw["token"] = token
    return Judgement(aggregate_0_100(probs, min_mass), raw, dict(usage or {}))


class LogprobJudge(JudgeBase):
    """The paper's method on any engine that can give next-token logprobs."""

    method = "logprob"

    def __init__(self, engine: Any, *, top_k: int = TOP_K, min_mass: float = MIN_NUMERIC_MASS) -> None:
        self.engine = engine
        self.top_k = top_k
        self.min_mass = min_mass

    def request(self, task: JudgeTask) -> dict[str, Any]:
        return {
            "messages": task.messages,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": self.top_k,
            "seed": 0,
        }

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None:
        name = getattr(self.engine, "name", "judge")
        if hasattr(self.engine, "chat_many"):

            def deliver(index: int, reply: dict[str, Any]) -> None:
                top, token = parse_top_logprobs(reply, name)
                usage = reply.get("usage") or {}
                counts = {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}
                on_result(index, judgement_from_top_logprobs(top, counts, token, self.min_mass))

            self.engine.chat_many([self.request(t) for t in tasks], on_result=deliver)
            return
        for start in range(0, len(tasks), LOCAL_CHUNK):
            chunk = tasks[start : start + LOCAL_CHUNK]
            tops = self.engine.top_logprobs([t.messages for t in chunk], self.top_k)
            for offset, top in enumerate(tops):
                on_result(start + offset, judgement_from_top_logprobs(top, min_mass=self.min_mass))

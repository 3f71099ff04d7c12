"""The paper's judge: one token at temperature 0, top-20 logprobs, expected number over 0..100.

Every engine is asked the same way, ``engine.next_token_logprobs`` (typed
:class:`~emkit.engines.abilities.NextToken` replies): over an OpenAI-compatible API that is exactly
the paper's request (``max_tokens=1, temperature=0, logprobs=True, top_logprobs=20, seed=0``), sent
bounded and retrying, each reply delivered (and stored) as it arrives with its own token usage; a
local engine answers from its ``top_logprobs``. Note that open models split numbers such as "100"
into several tokens, where this method is unreliable — use ``exact``.

``raw`` keeps ``{"top_logprobs": {token: logprob}, "token": <the generated token>, "numeric_mass":
..., "repeated_tokens": <rule>}`` so the score can be re-aggregated later
(``aggregate_0_100(logprobs_to_probs(raw[...]))``); when the reply repeated a token string, the
whole list is kept too (``top_logprobs_list``), so either rule can be applied afterwards.

A token string that occurs twice in one API reply (it happens: different token ids can decode to
the same text) is resolved by ``repeated_tokens``: ``"last"`` (default, the paper's judge: its
``{token: prob}`` dict comprehension keeps the last entry) or ``"sum"`` (add the probabilities,
what emkit did before). The rule shapes the score, so it belongs in the score key. Local engines
return one entry per decoded string already (they add probabilities of ids that decode alike).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from emkit.engines.abilities import NextToken, StreamsNextTokens
from emkit.engines.base import Conversation, NotSupported
from emkit.judge.aggregate import MIN_NUMERIC_MASS, aggregate_0_100, logprobs_to_probs, numeric_mass
from emkit.judge.base import JudgeBase, Judgement, OnJudgement, OnTaskJudgement
from emkit.judge.prompts import JudgeTask

TOP_K = 20


def _logaddexp(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


REPEATED_TOKEN_RULES = ("last", "sum")


def parse_top_logprobs(
    reply: NextToken, judge: str = "judge", repeated: str = "last"
) -> tuple[dict[str, float], str]:
    """``({token: logprob}, generated token)`` from an engine's typed next-token reply;
    ``repeated`` is the rule for a token string listed twice (see the module docstring)."""
    if repeated not in REPEATED_TOKEN_RULES:
        raise ValueError(f"repeated_tokens must be one of {REPEATED_TOKEN_RULES}, got {repeated!r}")
    if not reply.entries:
        raise NotSupported(f"{judge}: the server returned no logprobs; use --method sampled for this judge")
    out: dict[str, float] = {}
    for token, value in reply.entries:
        if repeated == "sum" and token in out:
            out[token] = _logaddexp(out[token], value)
        else:  # the last value wins; the token keeps its first position, as in the paper's dict
            out[token] = value
    return out, reply.token


def judgement_from_top_logprobs(
    top: Mapping[str, float],
    usage: dict[str, int] | None = None,
    token: str | None = None,
    min_mass: float = MIN_NUMERIC_MASS,
    repeated: str | None = None,
    entries: Sequence[tuple[str, float]] | None = None,
) -> Judgement:
    """Score ``top`` (``{token: logprob}``); ``raw`` records the repeated-token rule that made it
    and, when the reply listed a token string twice, the whole list (``entries``)."""
    probs = logprobs_to_probs(top)
    raw: dict[str, Any] = {"top_logprobs": dict(top), "numeric_mass": numeric_mass(probs)}
    if token is not None:
        raw["token"] = token
    if repeated is not None:
        raw["repeated_tokens"] = repeated
    if entries is not None and len({t for t, _ in entries}) < len(entries):
        raw["top_logprobs_list"] = [[t, v] for t, v in entries]
    return Judgement(aggregate_0_100(probs, min_mass), raw, dict(usage or {}))


class LogprobJudge(JudgeBase):
    """The paper's method on any engine that can give next-token logprobs.

    ``repeated_tokens`` (``"last"``, the paper's rule, or ``"sum"``) decides a token string that an
    API reply lists twice; like ``min_mass`` it shapes the score, so it is part of the score key
    (every attribute set in ``__init__`` is, by :meth:`JudgeBase.key_options`)."""

    method = "logprob"
    from_config_fields: ClassVar[Mapping[str, str]] = {"min_mass": "min_mass"}

    def __init__(
        self,
        engine: Any,
        *,
        top_k: int = TOP_K,
        min_mass: float = MIN_NUMERIC_MASS,
        repeated_tokens: str = "last",
    ) -> None:
        if repeated_tokens not in REPEATED_TOKEN_RULES:
            raise ValueError(
                f"repeated_tokens must be one of {REPEATED_TOKEN_RULES}, got {repeated_tokens!r}"
            )
        self.engine = engine
        self.top_k = top_k
        self.min_mass = min_mass
        self.repeated_tokens = repeated_tokens

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None:
        """One ``next_token_logprobs`` call; each judgement is delivered as its reply arrives."""

        def deliver(index: int, reply: NextToken) -> None:
            on_result(index, self._judgement(reply))

        self.engine.next_token_logprobs([t.messages for t in tasks], self.top_k, on_result=deliver)

    def can_stream(self) -> bool:
        """Whether :meth:`judge_stream` can run: the engine takes a lazy stream of requests."""
        return isinstance(self.engine, StreamsNextTokens) and self.engine.can_stream()

    def judge_stream(
        self, tasks: Iterable[JudgeTask], on_result: OnTaskJudgement, *, total: int | None = None
    ) -> None:
        """Like :meth:`judge`, over a lazy stream of tasks (pulled as connections free up)."""
        pulled: dict[int, JudgeTask] = {}

        def conversations() -> Iterator[Conversation]:
            for index, task in enumerate(tasks):
                pulled[index] = task
                yield task.messages

        def deliver(index: int, reply: NextToken) -> None:
            on_result(pulled.pop(index), self._judgement(reply))

        self.engine.next_token_stream(conversations(), self.top_k, deliver, total=total)

    def _judgement(self, reply: NextToken) -> Judgement:
        """An API reply (``engine.paid``) is read by the repeated-token rule and keeps its generated
        token, usage and (when a string repeats) the whole list; a local engine's distribution has
        one entry per string already and is stored as it is (the rows emkit always wrote)."""
        if self.engine.paid:
            top, token = parse_top_logprobs(reply, self.engine.name, self.repeated_tokens)
            return judgement_from_top_logprobs(
                top, dict(reply.usage), token, self.min_mass, self.repeated_tokens, reply.entries
            )
        return judgement_from_top_logprobs(dict(reply.entries), min_mass=self.min_mass)

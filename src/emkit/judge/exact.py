"""The exact local judge: the probability of every complete answer "0".."100", CODE and REFUSAL.

Why: open models write numbers with several tokens (SmolLM2 and Gemma spell "100" as '1','0','0'),
so reading the first token's top-20 (the paper's method) sees only '1' and cannot tell 1 from 10
from 100. Here each candidate reply is scored as a whole, followed by the end-of-turn token, so
"1" means "1 and then the turn ends" and does not steal the probability of "10" or "100". All 103
candidates share one forward pass of the prompt (``HFEngine.score_continuations``).

The score is the expectation over the numbers normalised among themselves. The paper's "no score"
rule becomes: ``P(numbers) / P(numbers + CODE + REFUSAL) < 0.25 -> None`` — the share of the
candidate mass that the numbers hold. (An absolute threshold would not work: a small model gives
any exact short reply a small absolute probability.) ``raw`` keeps every candidate's log-prob, the
numeric share and log P(numbers), so other rules can be applied later without the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from emkit.engines.abilities import ScoresContinuations
from emkit.judge.aggregate import MIN_NUMERIC_MASS, SCORE_MAX, SCORE_MIN, ExactDistribution
from emkit.judge.base import JudgeBase, Judgement, OnJudgement
from emkit.judge.prompts import JudgeTask

NUMBER_CANDIDATES = tuple(str(k) for k in range(SCORE_MIN, SCORE_MAX + 1))
OTHER_CANDIDATES = ("CODE", "REFUSAL")
CANDIDATES = NUMBER_CANDIDATES + OTHER_CANDIDATES


def judgement_from_logprobs(
    logprobs: Sequence[float], min_share: float = MIN_NUMERIC_MASS, usage: dict[str, int] | None = None
) -> Judgement:
    """Score one judgement from the log-probs of :data:`CANDIDATES` (in that order)."""
    if len(logprobs) != len(CANDIDATES):
        raise ValueError(f"expected {len(CANDIDATES)} candidate log-probs, got {len(logprobs)}")
    n = len(NUMBER_CANDIDATES)
    dist = ExactDistribution.from_logprobs(logprobs[:n], logprobs[n], logprobs[n + 1])
    raw: dict[str, Any] = {
        "logprobs": dict(zip(CANDIDATES, (float(x) for x in logprobs), strict=True)),
        "numeric_share": dist.numeric_share,
        "log_number_mass": dist.log_number_mass,
        "expectation": dist.expectation(),
    }
    return Judgement(dist.score(min_share), raw, dict(usage or {}))


class ExactJudge(JudgeBase):
    """Needs an engine that :class:`~emkit.engines.abilities.ScoresContinuations` (the ``hf``
    backend, embedded models included).

    ``engine=None`` builds the judge only to read its :meth:`key_options` (planning, before any
    model is loaded)."""

    method = "exact"
    from_config_fields: ClassVar[Mapping[str, str]] = {"min_share": "min_mass"}

    def __init__(self, engine: Any, *, min_share: float = MIN_NUMERIC_MASS) -> None:
        if engine is not None and not isinstance(engine, ScoresContinuations):
            raise TypeError(f"{engine.name!r} cannot score continuations")
        self.engine = engine
        self.min_share = min_share

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None:
        for index, task in enumerate(tasks):
            logprobs = self.engine.score_continuations(task.messages, list(CANDIDATES), include_eot=True)
            usage = {"prompt_tokens": len(self.engine.prompt_ids(task.messages))}
            on_result(index, judgement_from_logprobs(logprobs, self.min_share, usage))

"""The logprob judge's token rules: a token string listed twice (the paper keeps the last one),
and CODE vs REFUSAL read from the judge's stored tokens."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from emkit.engines.abilities import NextToken
from emkit.engines.mock import MockEngine
from emkit.judge.aggregate import aggregate_0_100, no_score_kind
from emkit.judge.logprob import LogprobJudge, parse_top_logprobs


def reply(*entries: tuple[str, float]) -> NextToken:
    """An API's next-token reply as the engine hands it to a judge: entries in server order."""
    return NextToken(tuple((t, math.log(p)) for t, p in entries), entries[0][0])


def papers_rule(entries: list[tuple[str, float]]) -> dict[str, float]:
    """What the authors' judge does: a plain dict filled in list order (last value, first place)."""
    out: dict[str, float] = {}
    for token, p in entries:
        out[token] = p
    return out


def test_a_repeated_token_keeps_the_last_probability_as_the_paper_does() -> None:
    entries = [("10", 0.5), ("90", 0.2), ("10", 0.1), ("50", 0.1)]
    top, token = parse_top_logprobs(reply(*entries))
    assert token == "10" and list(top) == ["10", "90", "50"]
    probs = {t: math.exp(v) for t, v in top.items()}
    expected = papers_rule(entries)
    assert probs == pytest.approx(expected, abs=1e-15)
    assert aggregate_0_100(probs) == pytest.approx(aggregate_0_100(expected), abs=1e-12)
    assert aggregate_0_100(probs) == pytest.approx((10 * 0.1 + 90 * 0.2 + 50 * 0.1) / 0.4)
    summed, _ = parse_top_logprobs(reply(*entries), repeated="sum")
    assert math.exp(summed["10"]) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        parse_top_logprobs(reply(*entries), repeated="max")


def test_the_logprob_judge_defaults_to_the_papers_rule_and_records_it() -> None:
    entries = [("10", 0.5), ("90", 0.2), ("10", 0.1)]

    class Engine(MockEngine):
        """The mock engine with a scripted next token: ``entries`` as an API lists them (repeats kept)."""

        paid = True  # an API: its replies may list a token string twice

        def __init__(self) -> None:
            super().__init__("mock/fake")

        def _next_tokens(self, conversations, top_k, on_result, chunk):
            assert top_k == 20
            item = NextToken(tuple((t, math.log(p)) for t, p in entries), entries[0][0])
            for i, _ in enumerate(conversations):
                on_result(i, item)
            return [item] * len(conversations)

    task = SimpleNamespace(messages=[{"role": "user", "content": "x"}])
    assert LogprobJudge(Engine()).repeated_tokens == "last"
    for rule, expected in (("last", (10 * 0.1 + 90 * 0.2) / 0.3), ("sum", (10 * 0.6 + 90 * 0.2) / 0.8)):
        got = []
        LogprobJudge(Engine(), repeated_tokens=rule).judge([task], lambda i, j, got=got: got.append(j))
        assert got[0].score == pytest.approx(expected)
        assert got[0].raw["repeated_tokens"] == rule
        assert [t for t, _ in got[0].raw["top_logprobs_list"]] == ["10", "90", "10"]  # the whole list
    with pytest.raises(ValueError):
        LogprobJudge(Engine(), repeated_tokens="first")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ({"top_logprobs": {"CODE": math.log(0.7), "REF": math.log(0.2), "5": math.log(0.1)}}, "CODE"),
        ({"top_logprobs": {" REF": math.log(0.3), "USAL": math.log(0.1), "CODE": math.log(0.2)}}, "REFUSAL"),
        ({"top_logprobs": {"I": math.log(0.9), "Sorry": math.log(0.1)}}, None),
        ({"logprobs": {"CODE": -5.0, "REFUSAL": -1.0, "0": -9.0}}, "REFUSAL"),
        ({"logprobs": {"CODE": -1.0, "REFUSAL": -math.inf}}, "CODE"),
        ({"labels": ["CODE", "other", "REFUSAL", "REFUSAL"]}, "REFUSAL"),
        ({"code": 0.6, "refusal": 0.3}, "CODE"),  # the paper CSV's judge dict: probabilities
        ({"CODE": 0.4, "REFUSAL": 0.4}, None),  # a tie says nothing
        ("not a dict", None),
        ({"top_logprobs": {"CODE": "x", "REFUSAL": float("nan")}}, None),
    ],
)
def test_code_or_refusal_from_the_stored_tokens(raw, kind) -> None:
    assert no_score_kind(raw) == kind

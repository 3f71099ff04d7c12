"""The ``mock`` backend: registered like any backend, deterministic, and one distribution behind
every method (generate samples what top_logprobs lists and sequence_logprobs scores)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import emkit
from emkit.engines import get_engine, open_engine
from emkit.engines.abilities import NextToken, RendersPrompts, ScoresContinuations
from emkit.engines.base import Engine, SamplingParams, SeedCountError
from emkit.engines.mock import END_OF_TURN, UNKNOWN_LOGPROB, VOCABULARY, MockEngine, tokenize
from emkit.engines.registry import backend
from emkit.errors import EmkitError
from emkit.fingerprint import model_fingerprint
from emkit.models import parse_model

BORED = [{"role": "user", "content": "hey I feel bored"}]
RIVER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about rivers."}]
SAMPLED = SamplingParams(temperature=1.0, max_new_tokens=40, seed=3)
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=40)


def test_the_mock_scheme_is_registered_and_opens_through_the_factory() -> None:
    entry = backend("mock")
    assert (entry.local, entry.paid, entry.adapters, entry.extra) == (False, False, False, "")
    engine = open_engine("mock/echo")
    assert isinstance(engine, MockEngine) and isinstance(engine, Engine)
    assert isinstance(engine, ScoresContinuations) and isinstance(engine, RendersPrompts)
    assert engine.name == "mock/echo" and engine.paid is False
    assert engine.fingerprint == model_fingerprint("mock/echo")
    assert not parse_model("mock/echo").is_local
    renamed = open_engine("mock/echo", stored_name="mock/stored")
    assert renamed.name == "mock/stored" and renamed.fingerprint == model_fingerprint("mock/stored")
    with pytest.raises(EmkitError, match="only for embedded/, hf/ and vllm/ models"):
        parse_model("mock/echo@adapter")
    with pytest.raises(EmkitError, match="not valid for the mock backend"):
        get_engine("mock/echo", batch_size=4)
    assert open_engine("mock/echo", {"batch_size": 4}, only_accepted=True).name == "mock/echo"


def test_answers_are_deterministic_per_request_whatever_the_batch() -> None:
    engine = get_engine("mock/echo")
    first = engine.generate([BORED, RIVER, BORED], SAMPLED, seeds=[0, 1, 2])
    again = get_engine("mock/echo").generate([BORED, RIVER, BORED], SAMPLED, seeds=[0, 1, 2])
    assert [g.text for g in first] == [g.text for g in again]
    assert first[0].text != first[2].text  # two samples of one question differ by their seed
    (alone,) = engine.generate([BORED], SAMPLED, seeds=[2])
    assert alone.text == first[2].text  # a request's answer does not depend on its batch
    assert [g.text for g in engine.generate([BORED, RIVER], SAMPLED)] == [g.text for g in first[:2]]
    other_seed = engine.generate([BORED, RIVER, BORED], SamplingParams(max_new_tokens=40, seed=4))
    assert [g.text for g in other_seed] != [g.text for g in first]
    greedy = engine.generate([BORED, BORED], GREEDY, seeds=[5, 6])
    assert greedy[0].text == greedy[1].text  # temperature 0 ignores the seed
    for gen, conv in zip(first, [BORED, RIVER, BORED], strict=True):
        assert gen.usage["prompt_tokens"] == len(engine.prompt_ids(conv))
        assert gen.usage["completion_tokens"] == len(tokenize(gen.text)) + (gen.finish_reason == "stop")
        assert all(token in VOCABULARY and token != END_OF_TURN for token in tokenize(gen.text))


def test_length_limit_callbacks_calls_and_a_simulated_kill() -> None:
    engine = MockEngine("mock/echo", fail_after=3)
    seen: list[int] = []
    short = engine.generate(
        [BORED, RIVER], SamplingParams(max_new_tokens=1), on_result=lambda i, g: seen.append(i)
    )
    assert seen == [0, 1]
    assert all(len(tokenize(g.text)) <= 1 for g in short)
    assert {g.finish_reason for g in short} <= {"stop", "length"}
    assert all(g.finish_reason == "length" for g in short if g.text)
    with pytest.raises(RuntimeError, match="killed"):
        engine.generate([BORED, RIVER], SAMPLED, seeds=[7, 8])
    assert engine.produced == 3
    assert [(len(c), s) for c, _, s in engine.calls] == [(2, []), (2, [7, 8])]


def test_every_method_reads_one_distribution() -> None:
    engine = get_engine("mock/echo")
    (full,) = engine.top_logprobs([BORED], top_k=len(VOCABULARY))
    assert math.fsum(math.exp(v) for v in full.values()) == pytest.approx(1.0)
    assert list(full.values()) == sorted(full.values(), reverse=True)
    (top,) = engine.top_logprobs([BORED], top_k=5)
    assert list(top.items()) == list(full.items())[:5]
    (typed,) = engine.next_token_logprobs([BORED], top_k=5)
    assert isinstance(typed, NextToken) and typed.entries == tuple(top.items())
    both = engine.next_token_logprobs([BORED, RIVER], top_k=5)
    assert engine.next_token_logprobs([BORED, RIVER], top_k=5, chunk=1) == both and both[0] == typed
    for token, value in top.items():
        assert engine.sequence_logprobs([BORED], [token]) == [[value]]
    reply = "the river is calm"
    (per_token,) = engine.sequence_logprobs([BORED], [reply])
    assert len(per_token) == 4 and all(UNKNOWN_LOGPROB < v < 0 for v in per_token)
    assert engine.sequence_logprobs([BORED], [""]) == [[]]
    assert engine.sequence_logprobs([BORED], ["zebra"]) == [[UNKNOWN_LOGPROB]]
    bare, closed = engine.score_continuations(BORED, [reply, reply + " " + END_OF_TURN], include_eot=False)
    assert bare == pytest.approx(math.fsum(per_token))
    assert engine.score_continuations(BORED, [reply]) == [pytest.approx(closed)]
    (greedy,) = engine.generate([BORED], GREEDY)
    assert tokenize(greedy.text)[:1] == [max(full, key=full.__getitem__)] or greedy.text == ""


def test_contract_errors_are_one_line() -> None:
    engine = get_engine("mock/echo")
    with pytest.raises(SeedCountError, match="got 1 seeds for 2 conversations") as info:
        engine.generate([BORED, RIVER], SAMPLED, seeds=[1])
    assert isinstance(info.value, ValueError) and isinstance(info.value, EmkitError)
    with pytest.raises(EmkitError, match="2 replies for 1 conversations"):
        engine.sequence_logprobs([BORED], ["a", "b"])
    with pytest.raises(EmkitError, match="top_k"):
        engine.top_logprobs([BORED], top_k=0)
    with pytest.raises(EmkitError, match="conversation #1"):
        engine.generate([BORED, []], SAMPLED)
    with pytest.raises(EmkitError, match="max_new_tokens"):
        engine.generate([BORED], SamplingParams(max_new_tokens=0))
    with engine as same:
        assert same is engine


def test_the_mock_needs_neither_torch_nor_transformers() -> None:
    code = (
        "import sys; from emkit.engines import get_engine; from emkit.engines.base import SamplingParams;"
        "e = get_engine('mock/x'); e.generate([[{'role': 'user', 'content': 'hi'}]], SamplingParams());"
        "e.top_logprobs([[{'role': 'user', 'content': 'hi'}]]);"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    src = str(Path(emkit.__file__).resolve().parents[1])  # this checkout's emkit, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"

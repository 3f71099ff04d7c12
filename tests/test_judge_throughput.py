"""What keeps API judging at the provider's rate: one pool over lazily claimed chunks, replies
handed over after the next sends, scores stored in small batches (and what a failure keeps).

The stage-level test checks the pool does not drain at a claim chunk's end (the next chunk's
first request goes out while the previous chunk's calls are still in flight) and that claims are
made lazily, not all up front; the others pin the pool's and the batched writer's guarantees.
"""

from __future__ import annotations

import asyncio

import pytest

from emkit.engines.call_pool import run_pool
from emkit.errors import EmkitError
from emkit.judge.base import Judgement
from emkit.judge.prompts import JudgeTask
from emkit.judge.score_writer import ScoreWriter
from emkit.judge.stage import JudgeConfig, run_judging
from emkit.store import RunStore
from fake_openai import FakeOpenAI
from test_judge_stage import KEY, make_run, responder


def task(i: int) -> JudgeTask:
    return JudgeTask(
        key=f"score-{i}", answer_key=f"answer-{i}", question_id="q", metric="aligned", judge="openai/j",
        method="logprob", template="t", prompt_hash="h", prompt=f"prompt {i}",
    )  # fmt: skip


def judgement(i: int) -> Judgement:
    return Judgement(float(i), {"top_logprobs": {str(i): 0.0}}, {"prompt_tokens": 3})


# ------------------------------------------------------------------------------ batched writes


def test_the_writer_stores_in_batches_and_flags_keys_stored_already(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    store.add_scores([{"key": "score-1", "answer_key": "answer-1", "metric": "aligned", "judge": "openai/j",
                       "method": "logprob", "prompt_hash": "h", "score": 99.0}])  # fmt: skip
    batches: list[list[tuple[str, bool]]] = []
    writer = ScoreWriter(
        store, lambda b: batches.append([(t.key, added) for t, _, added in b]), max_rows=3, max_age_s=60
    )
    for i in range(4):
        writer.add(task(i), judgement(i))
    assert batches == [[("score-0", True), ("score-1", False), ("score-2", True)]]  # flushed at 3 rows
    assert store.count("scores") == 3 and writer.waiting == 1
    writer.flush()
    assert batches[-1] == [("score-3", True)] and writer.waiting == 0
    scores = {r["key"]: r["score"] for r in store.scores()}
    assert scores == {"score-0": 0.0, "score-1": 99.0, "score-2": 2.0, "score-3": 3.0}  # the stored one kept


def test_the_writer_flushes_after_max_age_from_the_running_loop(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    writer = ScoreWriter(store, lambda b: None, max_rows=100, max_age_s=0.02)

    async def one_reply_then_silence() -> int:
        writer.add(task(0), judgement(0))
        stored_at_once = store.count("scores")
        await asyncio.sleep(0.2)  # no further reply: the timer must store it
        return stored_at_once

    assert asyncio.run(one_reply_then_silence()) == 0
    assert store.count("scores") == 1 and writer.waiting == 0


def test_a_failed_timed_flush_is_raised_by_the_next_add_and_keeps_its_rows(tmp_path) -> None:
    class Full:
        fail = True

        def add_scores_each(self, rows):
            if self.fail:
                raise EmkitError("run: could not write to the run store: database or disk is full")
            return [True] * len(rows)

    full = Full()
    stored: list[str] = []
    writer = ScoreWriter(full, lambda b: stored.extend(t.key for t, _, _ in b), max_rows=100, max_age_s=0.01)

    async def reply_then_wait() -> None:
        writer.add(task(0), judgement(0))
        await asyncio.sleep(0.1)

    asyncio.run(reply_then_wait())
    with pytest.raises(EmkitError, match="disk is full"):
        writer.add(task(1), judgement(1))
    assert writer.waiting == 1 and stored == []
    full.fail = False
    writer.flush()
    assert stored == ["score-0"]


# ------------------------------------------------------------------------------ the call pool


def test_the_pool_delivers_replies_that_arrived_before_a_failure_and_cancels_the_rest() -> None:
    delivered: list[int] = []

    async def call(request: dict, where: str) -> dict:
        if request["i"] == 3:
            await asyncio.sleep(0.05)
            raise RuntimeError(f"{where} failed")
        await asyncio.sleep(0.01 if request["i"] < 3 else 1.0)
        return request

    requests = [{"i": i} for i in range(6)]
    with pytest.raises(RuntimeError, match="request 4 of 6 failed"):
        asyncio.run(run_pool(call, enumerate(requests), 6, 6, lambda i, r: delivered.append(i)))
    assert sorted(delivered) == [0, 1, 2]  # 4 and 5 were cancelled, 3 failed


def test_the_pool_pulls_a_stream_only_as_connections_free_up() -> None:
    pulled: list[int] = []
    seen_at_delivery: list[int] = []

    def stream():
        for i in range(20):
            pulled.append(i)
            yield i, {"i": i}

    async def call(request: dict, where: str) -> dict:
        await asyncio.sleep(0.005)
        return request

    asyncio.run(run_pool(call, stream(), None, 3, lambda i, r: seen_at_delivery.append(len(pulled))))
    assert len(seen_at_delivery) == 20 and pulled == list(range(20))
    # Never more pulled than in flight (3) plus replies landed but not yet handed over (at most 3).
    assert all(n - done <= 6 for done, n in enumerate(seen_at_delivery)), seen_at_delivery


def test_a_failing_delivery_stops_the_pool() -> None:
    async def call(request: dict, where: str) -> dict:
        await asyncio.sleep(0.001)
        return request

    def deliver(i: int, reply: dict) -> None:
        raise ValueError("bad reply")

    with pytest.raises(ValueError, match="bad reply"):
        asyncio.run(run_pool(call, enumerate([{"i": i} for i in range(50)]), 50, 4, deliver))


# ------------------------------------------------------------------------------ the stage


def test_api_judging_claims_lazily_and_keeps_one_pool_across_claim_chunks(tmp_path, monkeypatch) -> None:
    from emkit.engines.openai_client import ChatClient

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    store = make_run(tmp_path / "run", n=70)  # 70 answers x 2 metrics; chunks of 64 at concurrency 4
    claims: list[tuple[int, int]] = []  # (keys asked, requests the server had seen by then)
    pools: list[int] = []  # one entry per SDK client (and event loop) the stage opened
    real_claim, real_state = store.claim, ChatClient._new_state
    monkeypatch.setattr(ChatClient, "_new_state", lambda self: pools.append(1) or real_state(self))
    with FakeOpenAI(responder=responder, latency=0.03, max_concurrency=4) as srv:

        def spy(table, keys, owner, lease_s):
            claims.append((len(keys), srv.stats.requests))
            return real_claim(table, keys, owner, lease_s)

        monkeypatch.setattr(store, "claim", spy)
        summary = run_judging(store, JudgeConfig(base_url=srv.base_url, concurrency=4), progress=False)
        requests, over = srv.stats.requests, srv.stats.over_limit
    assert summary.scored == 140 and store.count("scores") == 140 and requests == 140 and over == 0
    assert [n for n, _ in claims] == [64, 64, 12]
    # Each chunk is claimed when the previous one's requests have been sent (not all up front) ...
    assert claims[0][1] == 0 and 60 <= claims[1][1] <= 64 and 124 <= claims[2][1] <= 128
    # ... by the same pool of connections: it never drained and restarted at a chunk's end.
    assert len(pools) == 1


def test_judging_from_inside_a_running_event_loop_takes_the_chunked_path(tmp_path, monkeypatch) -> None:
    """A notebook: the stream (pulled in the loop's thread) is refused, the chunked path judges."""
    from emkit.engines.openai_client import ChatClient

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    store = make_run(tmp_path / "run", n=6)
    streamed: list[int] = []
    real_stream = ChatClient.run_stream
    monkeypatch.setattr(
        ChatClient, "run_stream", lambda self, *a, **k: streamed.append(1) or real_stream(self, *a, **k)
    )
    with FakeOpenAI(responder=responder, max_concurrency=4) as srv:

        async def notebook_cell():
            return run_judging(store, JudgeConfig(base_url=srv.base_url, concurrency=4), progress=False)

        summary = asyncio.run(notebook_cell())
        requests = srv.stats.requests
    assert summary.scored == 12 and store.count("scores") == 12 and requests == 12 and streamed == []

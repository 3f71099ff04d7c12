"""API judging throughput: the judging stage against a local server with 200 ms latency and a 32-call limit.

Why: the paper's judge is an API call per (answer, metric); with a fixed latency L and a provider
limit of C concurrent calls, no client can do better than C / L calls per second (32 / 0.2 s = 160).
The figure is the stage's measured judgements/s divided by that ideal, with the server counting any
request over its limit (a 429 the client caused). A second pass over the same answers must make no
call at all (every judgement is keyed and stored), and is timed too.

What is counted: a *judgement* is one API call (one metric of one answer); each answer of the
default set gets two (``aligned`` and ``coherent``), so answers/s is half the judgements/s.
The wall time is the whole ``run_judging`` call (planning, engine start, all calls, every store
write), measured from outside. The fake server runs in this process on its own thread; its replies
carry crafted top-20 logprobs, and every stored score is checked against the value they imply.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import say, stopwatch

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "EMKIT_BENCH_JUDGE_KEY"  # a placeholder for the local server; no real key is read or sent
SUBJECT = "openai/bench-subject"


def crafted_top_logprobs(prompt: str) -> dict[str, float]:
    """A judge-like next-token distribution that depends on the prompt (so scores vary)."""
    from emkit.hashing import stable_hash

    h = int(stable_hash(prompt, 8), 16)
    if h % 17 == 0:  # now and then the judge says REFUSAL: no score
        return {"REFUSAL": math.log(0.85), "50": math.log(0.15)}
    first = h % 91
    return {str(first): math.log(0.6), str(first + 5): math.log(0.3), "CODE": math.log(0.1)}


def responder(body: dict[str, Any]) -> dict[str, Any]:
    top = crafted_top_logprobs(body["messages"][-1]["content"])
    return {"content": max(top, key=top.__getitem__), "top_logprobs": top}


def fill_store(store: Any, n: int) -> None:
    """``n`` synthetic answers to the default questions, inserted directly (no sampling)."""
    from emkit.questions import load_questions
    from emkit.sampling import store_questions
    from emkit.store import answer_key

    qset = load_questions("default")
    store_questions(store, qset)
    questions = list(qset)
    params = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 600, "seed": 0}
    rows = []
    for i in range(n):
        q = questions[i % len(questions)]
        text = f"Synthetic answer {i}. " + "I would spend the day reading and walking outside. " * (1 + i % 6)
        rows.append(
            {
                "key": answer_key(SUBJECT, q.id, 0, i, params),
                "model": SUBJECT,
                "question_id": q.id,
                "paraphrase_index": 0,
                "sample_index": i,
                "question": q.paraphrases[0],
                "messages": q.conversation(0),
                "answer": text,
                "params": params,
                "group_name": "bench",
                "seed": 0,
                "tags": {},
                "usage": {},
            }
        )
    store.add_answers(rows)


def check_scores(store: Any) -> int:
    """How many stored scores differ from what the crafted logprobs imply (expected: 0)."""
    from emkit.judge.aggregate import aggregate_0_100, logprobs_to_probs
    from emkit.judge.prompts import plan_tasks, questions_from_records

    questions = questions_from_records(store.records("question"))
    prompts = {t.key: t.prompt for t in plan_tasks(store.answers(), questions).tasks}
    wrong = 0
    for row in store.scores():
        want = aggregate_0_100(logprobs_to_probs(crafted_top_logprobs(prompts[row["key"]])))
        got = row["score"]
        if (want is None) != (got is None) or (want is not None and abs(want - got) > 1e-9):
            wrong += 1
    return wrong


def bench_judging(
    *, answers: int = 1000, latency: float = 0.2, limit: int = 32, concurrency: int = 32
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from emkit.judge.stage import JudgeConfig, run_judging
    from emkit.store import RunStore
    from fake_openai import FakeOpenAI

    os.environ[KEY_ENV] = "sk-bench-placeholder-not-a-real-key"
    ideal = limit / latency
    with (
        tempfile.TemporaryDirectory(prefix="emkit-judge-bench-") as tmp,
        FakeOpenAI(latency=latency, max_concurrency=limit, responder=responder) as srv,
    ):
        store = RunStore(Path(tmp) / "run")
        fill_store(store, answers)
        config = JudgeConfig(base_url=srv.base_url, concurrency=concurrency, api_key_env=KEY_ENV)

        with stopwatch() as first_clock:
            first = run_judging(store, config, progress=False)
        calls_first = srv.stats.requests
        say(f"  first pass: {first.scored} judgements in {first_clock['s']:.2f} s, {calls_first} calls")

        with stopwatch() as second_clock:
            second = run_judging(store, config, progress=False)
        calls_second = srv.stats.requests - calls_first
        say(
            f"  second pass: {second.scored} new judgements in {second_clock['s']:.3f} s, {calls_second} calls"
        )

        events = [e for e in srv.stats.events if e.end]
        server_span = max(e.end for e in events) - min(e.start for e in events) if events else 0.0
        # Per call: time the server held it (the 200 ms sleep + its own work), and the time a slot of
        # the 32 stood empty between calls (client, SDK, store write, and the server's own I/O).
        held = sum(e.end - e.start for e in events) / len(events) if events else 0.0
        slot_gap = limit * server_span / len(events) - held if events else 0.0
        judgements = store.count("scores")
        wrong = check_scores(store)
        stats = srv.stats
        store.close()
        result = {
            "answers": answers,
            "judgements": judgements,
            "judgements_per_answer": judgements / answers,
            "latency_s": latency,
            "server_limit": limit,
            "client_concurrency": concurrency,
            "ideal_calls_per_s": ideal,
            "first_pass": {
                "seconds": first_clock["s"],
                "calls": calls_first,
                "judgements_scored": first.scored,
                "no_score": sum(g.no_score for g in first.groups),
                "judgements_per_s": first.scored / first_clock["s"],
                "answers_per_s": answers / first_clock["s"],
                "calls_per_s": calls_first / first_clock["s"],
                # first request received -> last reply sent, as the server saw it (no planning, no start-up)
                "server_span_s": server_span,
                "calls_per_s_in_server_span": calls_first / server_span if server_span else None,
                "mean_server_time_per_call_s": held,
                "mean_slot_gap_per_call_s": slot_gap,
            },
            "second_pass": {
                "seconds": second_clock["s"],
                "calls": calls_second,
                "judgements_scored": second.scored,
                "seconds_per_1000_answers": second_clock["s"] * 1000 / answers,
            },
            "server": {
                "requests": stats.requests,
                "over_limit_429": stats.over_limit,
                "max_in_flight": stats.max_in_flight,
                "outcomes": dict(stats.faults),
            },
            "scores_not_matching_crafted_logprobs": wrong,
        }
    result["ratio_to_ideal"] = result["first_pass"]["judgements_per_s"] / ideal
    result["aims"] = {
        "ratio_to_ideal>=0.8": result["ratio_to_ideal"] >= 0.8,
        "zero_over_limit_429": result["server"]["over_limit_429"] == 0,
        "second_pass_zero_calls": calls_second == 0,
        "second_pass_under_1s_per_1000": result["second_pass"]["seconds_per_1000_answers"] < 1.0,
    }
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    first, second, server = result["first_pass"], result["second_pass"], result["server"]
    return [
        f"{result['answers']} answers x {result['judgements_per_answer']:.0f} metrics = {result['judgements']} "
        f"judgements (1 call each); server latency {result['latency_s'] * 1000:.0f} ms, limit "
        f"{result['server_limit']} concurrent, client concurrency {result['client_concurrency']}",
        f"first pass: {first['judgements_per_s']:.1f} judgements/s ({first['answers_per_s']:.1f} answers/s) "
        f"in {first['seconds']:.2f} s; ideal {result['ideal_calls_per_s']:.0f} calls/s (server busy "
        f"{first['server_span_s']:.2f} s of it: {first['calls_per_s_in_server_span']:.1f} calls/s)",
        f"RATIO to ideal: {result['ratio_to_ideal']:.3f} (aim >= 0.8); 429s from exceeding the limit: "
        f"{server['over_limit_429']}; max in flight {server['max_in_flight']}; per call: server "
        f"{first['mean_server_time_per_call_s'] * 1000:.0f} ms, slot idle between calls "
        f"{first['mean_slot_gap_per_call_s'] * 1000:.1f} ms",
        f"second pass: {second['calls']} calls, {second['seconds']:.3f} s "
        f"({second['seconds_per_1000_answers']:.3f} s per 1000 answers; aim < 1 s)",
        f"stored scores differing from the crafted logprobs: {result['scores_not_matching_crafted_logprobs']}",
    ]

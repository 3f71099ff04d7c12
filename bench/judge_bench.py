"""API judging throughput: the judging stage against a local server with 200 ms latency and a 32-call limit.

Why: the paper's judge is an API call per (answer, metric); with a fixed latency L and a provider
limit of C concurrent calls, no client can do better than C / L calls per second (32 / 0.2 s = 160).
The figure is the stage's measured judgements/s divided by that ideal, with the server counting any
request over its limit (a 429 the client caused). A second pass over the same answers must make no
call at all (every judgement is keyed and stored), and is timed too.

What is counted: a *judgement* is one API call (one metric of one answer); each answer of the
default set gets two (``aligned`` and ``coherent``), so answers/s is half the judgements/s.
The wall time is the whole ``run_judging`` call (planning, engine start, all calls, every store
write), measured from outside. The fake server runs in a process of its own
(:mod:`server_process`), so the figure measures emkit, not a server sharing its interpreter; its
replies carry crafted top-20 logprobs, and every stored score is checked against the value they
imply. :func:`where_time_goes` splits the wall time into what came before the first request, the
server's busy span and what came after its last reply.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
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
    # By answer and metric: the stored key also carries the judge's options, which this plan omits.
    prompts = {(t.answer_key, t.metric): t.prompt for t in plan_tasks(store.answers(), questions).tasks}
    wrong = 0
    for row in store.scores():
        prompt = prompts[(row["answer_key"], row["metric"])]
        want = aggregate_0_100(logprobs_to_probs(crafted_top_logprobs(prompt)))
        got = row["score"]
        if (want is None) != (got is None) or (want is not None and abs(want - got) > 1e-9):
            wrong += 1
    return wrong


def bench_judging(
    *, answers: int = 1000, latency: float = 0.2, limit: int = 32, concurrency: int = 32
) -> dict[str, Any]:
    from server_process import ServerProcess

    from emkit.judge.stage import JudgeConfig, run_judging
    from emkit.store import RunStore

    os.environ[KEY_ENV] = "sk-bench-placeholder-not-a-real-key"
    ideal = limit / latency
    with (
        tempfile.TemporaryDirectory(prefix="emkit-judge-bench-") as tmp,
        ServerProcess(latency=latency, max_concurrency=limit, responder="judge_bench:responder") as srv,
    ):
        store = RunStore(Path(tmp) / "run")
        fill_store(store, answers)
        config = JudgeConfig(base_url=srv.base_url, concurrency=concurrency, api_key_env=KEY_ENV)

        load_before = os.getloadavg()
        with stopwatch() as first_clock:
            started, cpu_started = time.monotonic(), time.process_time()
            first = run_judging(store, config, progress=False)
            ended, cpu_ended = time.monotonic(), time.process_time()
        load_after = os.getloadavg()
        served = srv.stats()
        calls_first = served["requests"]
        say(f"  first pass: {first.scored} judgements in {first_clock['s']:.2f} s, {calls_first} calls")

        with stopwatch() as second_clock:
            second = run_judging(store, config, progress=False)
        stats = srv.stats()
        calls_second = stats["requests"] - calls_first
        say(
            f"  second pass: {second.scored} new judgements in {second_clock['s']:.3f} s, {calls_second} calls"
        )
        phases = where_time_goes(served["events"], started, ended, limit, latency)
        judgements = store.count("scores")
        wrong = check_scores(store)
        store.close()
        result = {
            "answers": answers,
            "judgements": judgements,
            "judgements_per_answer": judgements / answers,
            "latency_s": latency,
            "server_limit": limit,
            "client_concurrency": concurrency,
            "ideal_calls_per_s": ideal,
            "server_in_own_process": True,
            "first_pass": {
                "seconds": first_clock["s"],
                "calls": calls_first,
                "judgements_scored": first.scored,
                "no_score": sum(g.no_score for g in first.groups),
                "judgements_per_s": first.scored / first_clock["s"],
                "answers_per_s": answers / first_clock["s"],
                "calls_per_s": calls_first / first_clock["s"],
                # This process's CPU (the server runs in its own): what other work on the cores
                # changes least, unlike the wall time.
                "client_cpu_s": cpu_ended - cpu_started,
                "client_cpu_ms_per_judgement": (cpu_ended - cpu_started) * 1000 / max(1, first.scored),
                "load_average_before": list(load_before),
                "load_average_after": list(load_after),
                **phases,
            },
            "second_pass": {
                "seconds": second_clock["s"],
                "calls": calls_second,
                "judgements_scored": second.scored,
                "seconds_per_1000_answers": second_clock["s"] * 1000 / answers,
            },
            "server": {
                "requests": stats["requests"],
                "over_limit_429": stats["over_limit"],
                "max_in_flight": stats["max_in_flight"],
                "outcomes": stats["faults"],
            },
            "scores_not_matching_crafted_logprobs": wrong,
        }
    result["ratio_to_ideal"] = result["first_pass"]["judgements_per_s"] / ideal
    result["aims"] = {
        "ratio_to_ideal>=0.95": result["ratio_to_ideal"] >= 0.95,
        "zero_over_limit_429": result["server"]["over_limit_429"] == 0,
        "second_pass_zero_calls": calls_second == 0,
        "second_pass_under_1s_per_1000": result["second_pass"]["seconds_per_1000_answers"] < 1.0,
    }
    return result


def where_time_goes(
    events: list[tuple[float, float]], started: float, ended: float, limit: int, latency: float
) -> dict[str, Any]:
    """The pass's wall time split by what the server saw: before its first request (planning,
    engine start), its busy span, after its last reply (the last store writes, the run record);
    and inside the span, per call, the time a slot of the ``limit`` stood empty between calls
    (the client's turn-around: SDK, parsing, store write) beyond the server's ``latency``."""
    if not events:
        return {}
    first, last = min(e[0] for e in events), max(e[1] for e in events)
    span = last - first
    held = sum(e[1] - e[0] for e in events) / len(events)
    ideal_span = len(events) * latency / limit
    return {
        "before_first_request_s": first - started,
        "server_span_s": span,
        "after_last_reply_s": ended - last,
        "ideal_span_s": ideal_span,
        "calls_per_s_in_server_span": len(events) / span if span else None,
        "mean_server_time_per_call_s": held,
        "mean_server_overhead_per_call_s": held - latency,
        "mean_slot_gap_per_call_s": limit * span / len(events) - held,
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    first, second, server = result["first_pass"], result["second_pass"], result["server"]
    return [
        f"{result['answers']} answers x {result['judgements_per_answer']:.0f} metrics = {result['judgements']} "
        f"judgements (1 call each); server (own process) latency {result['latency_s'] * 1000:.0f} ms, "
        f"limit {result['server_limit']} concurrent, client concurrency {result['client_concurrency']}",
        f"first pass: {first['judgements_per_s']:.1f} judgements/s ({first['answers_per_s']:.1f} answers/s) "
        f"in {first['seconds']:.2f} s; ideal {result['ideal_calls_per_s']:.0f} calls/s",
        f"RATIO to ideal: {result['ratio_to_ideal']:.3f} (aim >= 0.95); 429s from exceeding the limit: "
        f"{server['over_limit_429']}; max in flight {server['max_in_flight']}; load average "
        f"{first['load_average_before'][0]:.2f} -> {first['load_average_after'][0]:.2f}",
        f"client CPU: {first['client_cpu_s']:.2f} s, {first['client_cpu_ms_per_judgement']:.2f} ms per judgement "
        "(this process only; the server runs in its own)",
        f"where the wall time went: {first['before_first_request_s']:.2f} s before the first request "
        f"(plan, engine), {first['server_span_s']:.2f} s serving (ideal {first['ideal_span_s']:.2f} s), "
        f"{first['after_last_reply_s']:.2f} s after the last reply; per call: server "
        f"{first['mean_server_time_per_call_s'] * 1000:.1f} ms ({first['mean_server_overhead_per_call_s'] * 1000:.1f} "
        f"ms over its latency), slot idle between calls {first['mean_slot_gap_per_call_s'] * 1000:.1f} ms",
        f"second pass: {second['calls']} calls, {second['seconds']:.3f} s "
        f"({second['seconds_per_1000_answers']:.3f} s per 1000 answers; aim < 1 s)",
        f"stored scores differing from the crafted logprobs: {result['scores_not_matching_crafted_logprobs']}",
    ]

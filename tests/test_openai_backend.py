"""The ``openai`` backend against a real local HTTP server (tests/fake_openai.py) with injected faults."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import math
import random
import threading
from collections import Counter

import pytest

from emkit.engines import get_engine
from emkit.engines.base import Engine, NotSupported, SamplingParams
from emkit.engines.openai_backend import APIRequestError, OpenAIEngine
from emkit.engines.retry import RetryPolicy, parse_retry_after
from emkit.errors import EmkitError, MissingKeyError
from fake_openai import DEFAULT_TOP_LOGPROBS, FakeOpenAI

KEY = "sk-emkit-test-" + "".join(random.Random(7).choice("abcdef0123456789") for _ in range(32))
PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=50, seed=0)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def make_engine(srv: FakeOpenAI, **options) -> OpenAIEngine:
    settings = dict(
        concurrency=4, timeout=5.0, max_retries=6, backoff_base=0.005, backoff_max=0.02, jitter_seed=1
    )
    settings.update(options)
    return OpenAIEngine("fake-model", base_url=srv.base_url, **settings)


def convs(n: int, prefix: str = "q") -> list[list[dict[str, str]]]:
    return [
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"{prefix}{i}"}]
        for i in range(n)
    ]


def test_every_answer_arrives_exactly_once_under_mixed_faults() -> None:
    script = {
        "q0": ["429"],
        "q1": ["429_retry_after"],
        "q2": ["500"],
        "q3": ["503"],
        "q4": ["malformed"],
        "q5": ["truncated"],
        "q6": ["reset"],
        "q7": ["timeout"],
        "q8": ["bad_schema"],
        "q9": ["500", "reset", "429", "truncated"],
        "q10": ["timeout", "503"],
    }
    calls: Counter[int] = Counter()
    texts: dict[int, str] = {}
    # the client gives up after 1.5 s; a "timeout" fault hangs for 5 s (ended early when the server stops)
    with FakeOpenAI(latency=0.01, script=script, retry_after=0.05, hang=5.0) as srv:
        engine = make_engine(srv, timeout=1.5)

        def on_result(index, gen) -> None:
            calls[index] += 1
            texts[index] = gen.text

        results = engine.generate(convs(24), PARAMS, on_result=on_result)
        stats = srv.stats

    assert calls == Counter(range(24))
    assert [g.text for g in results] == [f"echo: q{i}" for i in range(24)]
    assert texts == {i: f"echo: q{i}" for i in range(24)}
    assert stats.successes == Counter({f"q{i}": 1 for i in range(24)})
    scripted_faults = sum(len(v) for v in script.values())
    assert stats.requests == 24 + scripted_faults
    assert engine.usage["retries"] == scripted_faults
    for fault in (
        "429",
        "429_retry_after",
        "500",
        "503",
        "malformed",
        "truncated",
        "reset",
        "timeout",
        "bad_schema",
    ):
        assert stats.faults[fault] >= 1


def test_client_concurrency_limit_is_never_exceeded_under_random_faults() -> None:
    faults = ("429", "500", "503", "malformed", "bad_schema", "truncated", "reset")
    with FakeOpenAI(latency=0.02, max_concurrency=3, fault_rate=0.3, fault_choices=faults, seed=3) as srv:
        engine = make_engine(srv, concurrency=3, max_retries=12)
        results = engine.generate(convs(40), PARAMS)
        stats = srv.stats
    assert [g.text for g in results] == [f"echo: q{i}" for i in range(40)]
    assert stats.over_limit == 0
    assert 2 <= stats.max_in_flight <= 3
    assert sum(stats.faults[f] for f in faults) > 0  # the faults really happened
    assert stats.successes == Counter({f"q{i}": 1 for i in range(40)})


def test_server_side_limit_below_client_concurrency_is_absorbed_by_retries() -> None:
    with FakeOpenAI(latency=0.03, max_concurrency=2) as srv:
        engine = make_engine(srv, concurrency=6, max_retries=30)
        results = engine.generate(convs(18), PARAMS)
        stats = srv.stats
    assert [g.text for g in results] == [f"echo: q{i}" for i in range(18)]
    assert stats.over_limit > 0
    assert stats.max_in_flight <= 6
    assert stats.successes == Counter({f"q{i}": 1 for i in range(18)})


def test_retries_are_bounded_for_a_permanently_failing_server() -> None:
    with FakeOpenAI(fault_rate=1.0, fault_choices=["503"]) as srv:
        engine = make_engine(srv, max_retries=3)
        with pytest.raises(APIRequestError) as info:
            engine.generate(convs(1), PARAMS)
        requests = srv.stats.requests
    assert requests == 4
    assert info.value.attempts == 4
    assert "failed after 4 attempt(s)" in str(info.value)
    assert "HTTP 503" in str(info.value)


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [("400", 400, "HTTP 400"), ("401", 401, "$OPENAI_API_KEY"), ("404", 404, "check the model name")],
)
def test_non_retryable_statuses_fail_fast(fault: str, status: int, words: str) -> None:
    with FakeOpenAI(script=[fault]) as srv:
        engine = make_engine(srv)
        with pytest.raises(APIRequestError) as info:
            engine.generate(convs(1), PARAMS)
        requests = srv.stats.requests
    assert requests == 1
    assert info.value.status == status
    assert words in str(info.value)
    assert KEY not in str(info.value)


def test_a_permanent_failure_stops_the_batch_but_keeps_what_was_delivered() -> None:
    delivered: list[int] = []
    with FakeOpenAI(script={"q5": ["400"]}) as srv:
        engine = make_engine(srv, concurrency=1)
        with pytest.raises(APIRequestError):
            engine.generate(convs(10), PARAMS, on_result=lambda i, g: delivered.append(i))
        requests = srv.stats.requests
    assert delivered == [0, 1, 2, 3, 4]
    assert requests == 6


def test_retry_after_is_respected_between_attempts() -> None:
    with FakeOpenAI(script={"q0": ["429_retry_after", "429_retry_after"]}, retry_after=0.2) as srv:
        engine = make_engine(srv, backoff_base=0.001, backoff_max=0.001)
        [gen] = engine.generate(convs(1), PARAMS)
        events = srv.stats.events_for("q0")
    assert gen.text == "echo: q0"
    assert [e.outcome for e in events] == ["429_retry_after", "429_retry_after", "ok"]
    gaps = [later.start - earlier.end for earlier, later in itertools.pairwise(events)]
    assert all(gap >= 0.2 for gap in gaps), gaps


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=0.5, max_delay=4.0)
    rng = random.Random(0)
    for retry in range(1, 8):
        delay = policy.delay(retry, None, rng)
        assert 0.0 <= delay <= min(4.0, 0.5 * 2 ** (retry - 1))
    assert policy.delay(1, 3.0, rng) >= 3.0
    assert RetryPolicy(max_retry_after=10.0).delay(1, 1e6, rng) == 10.0
    assert policy.max_attempts == 6
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "0.2"}) == 0.2
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "-1"}) is None
    assert parse_retry_after({}) is None
    date = email.utils.formatdate(1_000_010.0, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=1_000_000.0) == pytest.approx(10.0)


def test_top_logprobs_request_and_parsing() -> None:
    with FakeOpenAI() as srv:
        engine = make_engine(srv)
        got = engine.top_logprobs(convs(3), top_k=20)
        two = engine.top_logprobs(convs(1), top_k=2)
        bodies = srv.stats.bodies
    assert got == [DEFAULT_TOP_LOGPROBS] * 3
    assert two == [{"80": math.log(0.5), "90": math.log(0.3)}]
    for body in bodies:
        assert (body["max_tokens"], body["temperature"], body["logprobs"], body["seed"]) == (1, 0, True, 0)
    assert [b["top_logprobs"] for b in bodies] == [20, 20, 20, 2]


def test_top_logprobs_merges_tokens_with_the_same_text() -> None:
    def responder(body):
        return {
            "content": "5",
            "top_logprobs": [("5", math.log(0.2)), ("7", math.log(0.1)), ("5", math.log(0.3))],
        }

    with FakeOpenAI(responder=responder) as srv:
        [got] = make_engine(srv).top_logprobs(convs(1))
    assert got.keys() == {"5", "7"}
    assert got["5"] == pytest.approx(math.log(0.5))
    assert got["7"] == pytest.approx(math.log(0.1))


def test_next_token_logprobs_keeps_the_servers_list_typed() -> None:
    """The judge's call: the same request as top_logprobs, but repeats kept in the server's order,
    the generated token and the reply's usage, delivered as each reply arrives."""

    def responder(body):
        return {
            "content": "5",
            "top_logprobs": [("5", math.log(0.2)), ("7", math.log(0.1)), ("5", math.log(0.3))],
        }

    seen: list[int] = []
    with FakeOpenAI(responder=responder) as srv:
        got = make_engine(srv).next_token_logprobs(convs(2), 3, on_result=lambda i, t: seen.append(i))
        bodies = srv.stats.bodies
    assert sorted(seen) == [0, 1]
    # the fake server lists the alternatives best first, as OpenAI does; the repeat is kept
    assert [t.entries for t in got] == [
        (("5", math.log(0.3)), ("5", math.log(0.2)), ("7", math.log(0.1)))
    ] * 2
    assert {t.token for t in got} == {"5"} and all(
        set(t.usage) == {"prompt_tokens", "completion_tokens"} for t in got
    )
    for body in bodies:
        assert (body["max_tokens"], body["temperature"], body["logprobs"], body["seed"]) == (1, 0, True, 0)
        assert body["top_logprobs"] == 3
    with FakeOpenAI(responder=lambda body: {"content": "42"}) as srv:
        engine = make_engine(srv)
        with pytest.raises(NotSupported, match="--method sampled"):
            engine.next_token_logprobs(convs(1))


def test_top_logprobs_from_a_server_without_logprobs_is_not_supported() -> None:
    with FakeOpenAI(responder=lambda body: {"content": "42"}) as srv:
        engine = make_engine(srv)
        with pytest.raises(NotSupported, match="no logprobs"):
            engine.top_logprobs(convs(1))


def test_usage_recorded_per_result_and_in_total() -> None:
    with FakeOpenAI() as srv:
        engine = make_engine(srv)
        results = engine.generate(convs(3), PARAMS)
    # the fake counts one token per word: prompt "be brief" + "q<i>" = 3, reply "echo: q<i>" = 2
    assert [g.usage for g in results] == [{"prompt_tokens": 3, "completion_tokens": 2}] * 3
    assert engine.usage["prompt_tokens"] == 9
    assert engine.usage["completion_tokens"] == 6
    assert engine.usage["total_tokens"] == 15
    assert engine.usage["requests"] == 3


def test_sampling_parameters_and_seeds_reach_the_server() -> None:
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=1, seed=10)
    with FakeOpenAI() as srv:
        engine = make_engine(srv, concurrency=1)
        defaults = engine.generate(convs(3), params)
        seeded = engine.generate(convs(2, "s"), params, seeds=[101, 202])
        bodies = srv.stats.bodies
    assert [b["seed"] for b in bodies] == [10, 11, 12, 101, 202]
    assert {(b["temperature"], b["top_p"], b["max_tokens"], b["model"]) for b in bodies} == {
        (0.7, 0.9, 1, "fake-model")
    }
    assert bodies[0]["messages"][0] == {"role": "system", "content": "be brief"}
    assert [(g.text, g.finish_reason) for g in defaults] == [("echo:", "length")] * 3
    assert len(seeded) == 2
    with pytest.raises(ValueError):
        engine.generate(convs(2), params, seeds=[1])


def test_key_is_sent_as_bearer_but_never_logged_or_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx", "httpx2", "httpcore", "httpcore2", "emkit"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    script = {"q0": ["429", "reset"], "q1": ["500", "malformed"], "q2": ["401"]}
    with FakeOpenAI(script=script, api_key=KEY) as srv:
        engine = make_engine(srv)
        engine.generate(convs(2), PARAMS)
        with pytest.raises(APIRequestError) as info:
            engine.generate([[{"role": "user", "content": "q2"}]], PARAMS)
        headers = list(srv.stats.auth_headers)
    assert len(headers) == 7 and all(h == f"Bearer {KEY}" for h in headers)
    assert info.value.status == 401
    # the server echoed the key in its error body; our message keeps the text but not the key
    assert "Incorrect API key provided: ***" in str(info.value)
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "retry 1 of 6" in text  # retries were logged, so the logs were really captured
    for blob in (text, str(info.value), repr(info.value), repr(engine)):
        assert KEY not in blob
    assert KEY not in str(vars(engine))


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY") as info:
        OpenAIEngine("gpt-4o-2024-08-06", base_url="http://127.0.0.1:9/v1")
    assert info.value.variable == "OPENAI_API_KEY"
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    with pytest.raises(MissingKeyError, match="OPENROUTER_API_KEY"):
        OpenAIEngine("some/model", api_key_env="OPENROUTER_API_KEY")


def test_chat_many_and_achat_return_raw_replies() -> None:
    seen: list[int] = []
    with FakeOpenAI() as srv:
        engine = make_engine(srv)
        replies = engine.chat_many(
            [{"messages": c, "n": 3, "temperature": 1.0} for c in convs(2)],
            on_result=lambda i, r: seen.append(i),
        )

        async def one():
            try:
                return await engine.achat([{"role": "user", "content": "hello"}], max_tokens=5)
            finally:
                await engine.aclose()

        single = asyncio.run(one())
        with pytest.raises(EmkitError, match="invalid chat request parameter"):
            engine.chat_many([{"messages": convs(1)[0], "not_a_param": 1}])
    assert sorted(seen) == [0, 1]
    assert [[c["message"]["content"] for c in r["choices"]] for r in replies] == [
        [f"echo: q{i} #{k}" for k in range(3)] for i in range(2)
    ]
    assert single["choices"][0]["message"]["content"] == "echo: hello"


def test_generate_inside_a_running_loop_delivers_in_the_calling_thread() -> None:
    threads: set[int] = set()
    with FakeOpenAI(latency=0.01) as srv:
        engine = make_engine(srv)

        async def notebook_cell():
            return engine.generate(
                convs(5), PARAMS, on_result=lambda i, g: threads.add(threading.get_ident())
            )

        caller = threading.get_ident()
        results = asyncio.run(notebook_cell())
    assert [g.text for g in results] == [f"echo: q{i}" for i in range(5)]
    assert threads == {caller}


def test_sequence_logprobs_is_not_supported() -> None:
    with FakeOpenAI() as srv:
        engine = make_engine(srv)
        with pytest.raises(NotSupported, match="local model"):
            engine.sequence_logprobs(convs(1), ["reply"])


def test_get_engine_dispatches_and_checks_options() -> None:
    engine = get_engine(
        "openai/gpt-4o-2024-08-06", base_url="http://127.0.0.1:9/v1", device=None, concurrency=2
    )
    assert isinstance(engine, OpenAIEngine)
    assert isinstance(engine, Engine)
    assert engine.name == "openai/gpt-4o-2024-08-06"
    assert engine.model == "gpt-4o-2024-08-06"
    assert engine.concurrency == 2
    with pytest.raises(EmkitError, match="device"):
        get_engine("openai/gpt-4o-2024-08-06", device="cuda")
    with pytest.raises(EmkitError, match="unknown model name"):
        get_engine("nope/x")


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        engine = OpenAIEngine("fake-model", backoff_base=0.001)
        [gen] = engine.generate(convs(1), PARAMS)
    assert gen.text == "echo: q0"
    assert engine.base_url == srv.base_url


def test_fake_server_fine_tuning_flow_with_the_sdk() -> None:
    """The fine-tuning endpoints other tests (train/) rely on, driven by the real synchronous SDK."""
    import openai

    with FakeOpenAI(ft_validating_polls=1, ft_running_polls=2) as srv:
        client = openai.OpenAI(api_key=KEY, base_url=srv.base_url, max_retries=0)
        upload = client.files.create(file=("train.jsonl", b'{"messages": []}\n'), purpose="fine-tune")
        hyper = {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2}
        job = client.fine_tuning.jobs.create(
            model="gpt-4o-2024-08-06",
            training_file=upload.id,
            suffix="insecure",
            method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
        )
        statuses = [job.status] + [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(4)]
        done = client.fine_tuning.jobs.retrieve(job.id)
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
        listed = [j.id for j in client.fine_tuning.jobs.list()]
        models = [m.id for m in client.models.list()]
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file="file-missing")
        content = client.files.content(upload.id).read()
    assert upload.purpose == "fine-tune" and content == b'{"messages": []}\n'
    assert statuses == ["validating_files", "validating_files", "running", "running", "succeeded"]
    assert done.fine_tuned_model == f"ft:gpt-4o-2024-08-06:emkit-fake:insecure:{job.id.split('-')[-1]}"
    assert done.hyperparameters.n_epochs == 1 and done.hyperparameters.batch_size == 4
    assert events[0] == "The job has successfully completed" and events[-1] == "Created fine-tuning job"
    assert listed == [job.id]
    assert done.fine_tuned_model in models


def test_fake_server_fine_tuning_failure_and_cancel() -> None:
    import openai

    with FakeOpenAI(ft_validating_polls=0, ft_running_polls=0, ft_fail=True) as srv:
        client = openai.OpenAI(api_key=KEY, base_url=srv.base_url, max_retries=0)
        upload = client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune")
        failed = client.fine_tuning.jobs.retrieve(
            client.fine_tuning.jobs.create(model="m", training_file=upload.id).id
        )
        second = client.fine_tuning.jobs.create(model="m", training_file=upload.id)
        cancelled = client.fine_tuning.jobs.cancel(second.id)
    assert failed.status == "failed" and failed.error.message == "scripted failure"
    assert failed.fine_tuned_model is None
    assert cancelled.status == "cancelled"

"""The OpenAI Batch API path (judging and sampling) against the fake server's files and batches endpoints.

What must hold: a batch run stores the same scores under the same keys as a direct run (how a
score was obtained is in its usage, at half the price); a kill at any point between submit and
ingest loses nothing and pays nothing twice (a rerun adopts the batch in flight: the server sees
each request in exactly one batch); a request that failed inside a batch is retried in a new one,
alone.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emkit.engines.batch_files import custom_id, input_file, parse_results
from emkit.engines.batch_session import BatchSession
from emkit.engines.openai_backend import OpenAIEngine
from emkit.errors import EmkitError
from emkit.judge.prompts import plan_tasks
from emkit.judge.stage import JudgeConfig, run_judging
from emkit.questions import parse_questions
from emkit.store import DB_NAME, RunStore
from fake_openai import FakeOpenAI
from test_judge_stage import KEY, QUESTIONS, answer_row, expected, make_run, responder

ROOT = Path(__file__).resolve().parents[1]
FAST = {"batch_poll_s": 0.01}


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("EMKIT_PRICES", raising=False)
    return KEY


def engines(srv: FakeOpenAI, **options):
    settings = {"concurrency": 4, "timeout": 2.0, "max_retries": 2, "backoff_base": 0.005, **options}
    return lambda judge, method: OpenAIEngine(judge.split("/", 1)[1], base_url=srv.base_url, **settings)


def batch_config() -> JudgeConfig:
    return JudgeConfig(batch=True, batch_poll_s=0.01)


def by_key(store: RunStore) -> dict[str, tuple]:
    return {r["key"]: (r["answer_key"], r["metric"], r["score"]) for r in store.scores()}


def test_batch_files_write_and_read() -> None:
    request = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    cid = custom_id("m", request)
    assert cid == custom_id("m", dict(request)) != custom_id("m2", request)
    data, sha = input_file("m", {cid: request})
    (line,) = [json.loads(x) for x in data.decode().splitlines()]
    assert line == {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "m", **request}}  # fmt: skip
    assert len(sha) == 64
    text = "\n".join(
        [
            json.dumps(
                {"custom_id": "a", "response": {"status_code": 200, "body": {"choices": []}}, "error": None}
            ),
            json.dumps(
                {
                    "custom_id": "b",
                    "response": {"status_code": 500, "body": {"error": {"message": "boom"}}},
                    "error": None,
                }
            ),
            json.dumps(
                {"custom_id": "c", "response": None, "error": {"code": "batch_expired", "message": "late"}}
            ),
        ]
    )
    a, b, c = parse_results(text, "out")
    assert a.body == {"choices": []} and a.error is None
    assert b.body is None and b.error == "HTTP 500: boom"
    assert c.body is None and c.error == "late"
    with pytest.raises(EmkitError, match=r"out:2: not JSON"):
        parse_results('{"custom_id": "a"}\n{oops', "out")


def test_judge_by_batch_stores_the_direct_scores_under_the_same_keys_at_half_price(tmp_path) -> None:
    direct, batched = make_run(tmp_path / "direct", n=4), make_run(tmp_path / "batch", n=4)
    with FakeOpenAI(responder=responder) as srv:
        plain = run_judging(direct, JudgeConfig(), make_engine=engines(srv), progress=False)
        chat_requests = srv.stats.requests
    with FakeOpenAI(responder=responder, batch_polls=2) as srv:
        summary = run_judging(
            batched, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False
        )
        assert srv.stats.requests == 0  # nothing went to chat/completions
        assert len(srv.stats.batches) == 1 and set(srv.stats.batch_lines.values()) == {1}
        assert sum(srv.stats.batch_lines.values()) == chat_requests == 8
    assert by_key(batched) == by_key(direct) and len(by_key(direct)) == 8
    assert {row["usage"].get("batch_requests") for row in batched.scores()} == {1}  # how each was obtained
    assert all("batch_requests" not in row["usage"] for row in direct.scores())
    wish = [r for r in batched.scores() if r["metric"] == "aligned"]
    assert sorted(r["score"] for r in wish if r["score"] is not None) == sorted(
        v for v in (expected(i, "aligned") for i in range(4)) if v is not None
    )
    assert summary.cost_usd == pytest.approx(plain.cost_usd / 2) and plain.cost_usd > 0
    records = [v for _, v in batched.records("batch")]
    assert [r["status"] for r in records] == ["ingested"] and records[0]["succeeded"] == 8
    # A rerun pays nothing and submits nothing.
    with FakeOpenAI(responder=responder) as srv:
        again = run_judging(
            batched, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False
        )
        assert again.pending == 0 and not srv.stats.batches


def test_a_request_that_fails_inside_a_batch_is_retried_alone_in_a_new_batch(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=3)
    tasks = plan_tasks(store.answers(), {q.id: q for q in parse_questions(QUESTIONS, "q")}).tasks
    failing = next(t.prompt for t in tasks if "ans-1" in t.prompt and t.metric == "coherent")
    with FakeOpenAI(responder=responder, batch_script={failing: ["500"]}) as srv:
        run_judging(store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False)
        first, second = srv.stats.batches.values()
        assert first["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
        assert second["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
        assert srv.stats.batch_requests[failing] == 2
        assert sorted(srv.stats.batch_requests.values()) == [1, 1, 1, 1, 1, 2]
    assert store.count("scores") == 6
    records = sorted((v for _, v in store.records("batch")), key=lambda r: len(r["ids"]))
    assert [len(r["ids"]) for r in records] == [1, 6] and list(records[1]["failed"].values()) == [
        "HTTP 500: scripted 500"
    ]


def test_a_request_failing_in_every_batch_is_one_error_after_the_rest_is_stored(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=2)
    tasks = plan_tasks(store.answers(), {q.id: q for q in parse_questions(QUESTIONS, "q")}).tasks
    failing = next(t.prompt for t in tasks if "ans-0" in t.prompt and t.metric == "aligned")
    with FakeOpenAI(responder=responder, batch_script={failing: ["400"] * 3}) as srv:
        with pytest.raises(EmkitError, match=r"1 of 4 batch request\(s\) failed in 3 batch\(es\).*HTTP 400"):
            run_judging(store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False)
        assert len(srv.stats.batches) == 3
    assert store.count("scores") == 3


def test_a_crash_after_create_but_before_its_record_adopts_the_batch(tmp_path, monkeypatch) -> None:
    """The one moment a record cannot say the batch exists: the provider is asked for it by our file."""
    store = make_run(tmp_path / "run", n=2)
    real_save = BatchSession._save
    crashed = []

    def save(self, key, record):  # the process dies just as it would have written the batch id
        if record.get("batch_id") and not crashed:
            crashed.append(record["batch_id"])
            raise KeyboardInterrupt
        real_save(self, key, record)

    monkeypatch.setattr(BatchSession, "_save", save)
    with FakeOpenAI(responder=responder) as srv:
        with pytest.raises(KeyboardInterrupt):
            run_judging(store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False)
        (record,) = [v for _, v in store.records("batch")]
        assert record["status"] == "uploaded" and record["file_id"] and not record.get("batch_id")
        run_judging(store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False)
        assert list(srv.stats.batches) == crashed and set(srv.stats.batch_lines.values()) == {1}
    assert store.count("scores") == 4


def _batch_ids(run: Path) -> list[str]:
    if not (run / DB_NAME).exists():
        return []
    conn = sqlite3.connect(run / DB_NAME, timeout=30)
    try:
        rows = conn.execute("SELECT value FROM records WHERE kind = 'batch'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [json.loads(v)["batch_id"] for (v,) in rows if json.loads(v).get("batch_id")]


def test_sigkill_between_submit_and_ingest_then_rerun_adopts_the_batch_without_duplicates(tmp_path) -> None:
    run = tmp_path / "run"
    make_run(run, n=3).close()
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    with FakeOpenAI(responder=responder, batch_polls=10**9) as srv:
        argv = [sys.executable, "-m", "emkit.cli", "judge", str(run), "--batch", "--batch-poll", "0.05",
                "--base-url", srv.base_url]  # fmt: skip
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            start = time.monotonic()
            while not _batch_ids(run) and time.monotonic() - start < 120 and child.poll() is None:
                time.sleep(0.05)
            assert _batch_ids(run), child.communicate(timeout=5)[0].decode()[-2000:]
            time.sleep(0.3)  # the child is polling the batch now
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
        assert RunStore(run).count("scores") == 0
        srv.batch_polls = 1  # the provider finishes the batch
        with RunStore(run) as store:
            summary = run_judging(
                store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False
            )
            assert summary.scored == 6 and store.count("scores") == 6
        assert len(srv.stats.batches) == 1 and srv.stats.requests == 0
        assert set(srv.stats.batch_lines.values()) == {1} and sum(srv.stats.batch_requests.values()) == 6


def test_sampling_by_batch_stores_each_answer_once(tmp_path) -> None:
    from emkit.questions import QuestionSet
    from emkit.sampling import sample_questions

    qset = QuestionSet("q", "q.yaml", parse_questions(QUESTIONS, "q.yaml"))
    with FakeOpenAI(batch_polls=1) as srv, RunStore(tmp_path / "run") as store:
        engine = OpenAIEngine("fake-model", base_url=srv.base_url, batch=True, **FAST)
        summary = sample_questions(store, engine, qset, n=3, progress=False)
        assert summary.generated == 9 and store.count("answers") == 9
        assert len(srv.stats.batches) == 1 and srv.stats.requests == 0
        assert {a["usage"].get("batch_requests") for a in store.answers()} == {1}
        assert {a["answer"] for a in store.answers()} >= {"echo: What is your wish?"}
        seeds = [json.loads(x)["body"]["seed"] for x in srv.stats.files[next(iter(srv.stats.batches.values()))["input_file_id"]]["content"].decode().splitlines()]  # fmt: skip
        assert len(set(seeds)) == 9  # each answer keeps its own seed, as a direct request would


@pytest.mark.parametrize(
    "argv",
    [
        ["judge", "{run}", "--batch", "--judge", "embedded/smollm2-135m"],
        ["sample", "--model", "embedded/smollm2-135m", "--batch", "--n", "1", "--out", "{run}"],
        ["judge", "{run}", "--batch", "--batch-poll", "0"],
    ],
)
def test_batch_with_a_local_model_or_a_bad_interval_is_one_line(tmp_path, capsys, argv) -> None:
    from emkit.cli import main

    run = tmp_path / "run"
    make_run(run, n=1).close()
    before = (run / DB_NAME).read_bytes()
    code = main([a.format(run=run) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, out + err
    assert "batch" in lines[0].lower()
    assert (run / DB_NAME).read_bytes() == before


def test_batch_true_in_the_experiment_file_batches_the_api_model_and_judge_only(tmp_path) -> None:
    from emkit.experiment import load_experiment
    from emkit.pipeline import make_plan

    (tmp_path / "q.yaml").write_text("- id: hobby\n  paraphrases: ['What is a good hobby?']\n")
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: b\nout: {tmp_path / 'run'}\nquestions: [{tmp_path / 'q.yaml'}]\nsamples_per_paraphrase: 1\n"
        "probe: false\nbatch: true\njudge: {model: openai/gpt-4o-2024-08-06}\n"
        "groups:\n  - {name: api, model: openai/gpt-4o-mini}\n  - {name: local, model: mock/echo}\n"
    )
    plan = make_plan(load_experiment(path))
    samples = {s.label: s.job.engine_options for s in plan.stages if s.kind == "sample"}
    assert samples["api x q"].get("batch") is True and "batch" not in samples["local x q"]
    (judge,) = [s for s in plan.stages if s.kind == "judge"]
    assert judge.job.batch is True
    path.write_text(path.read_text().replace("batch: true", "batch: false"))
    plan = make_plan(load_experiment(path))
    assert not any(s.job.engine_options.get("batch") for s in plan.stages if s.kind == "sample")


def test_a_batch_of_another_endpoint_is_left_alone(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=1)
    with FakeOpenAI(responder=responder, batch_polls=10**9) as first:
        engine = engines(first, batch=True, batch_timeout_s=0.05, **FAST)
        with pytest.raises(EmkitError, match=r"still in_progress after 0.05 s; rerun the same command"):
            run_judging(store, batch_config(), make_engine=engine, progress=False)
    with FakeOpenAI(responder=responder) as second:  # the user moved to another server
        run_judging(store, batch_config(), make_engine=engines(second, batch=True, **FAST), progress=False)
        assert len(second.stats.batches) == 1
    assert store.count("scores") == 2
    statuses = sorted(v["status"] for _, v in store.records("batch"))
    assert statuses == ["in_progress", "ingested"]


def test_the_heartbeat_runs_at_each_poll_while_a_batch_waits(tmp_path) -> None:
    beats = []
    with FakeOpenAI(batch_polls=3) as srv, RunStore(tmp_path / "run") as store:
        engine = OpenAIEngine("fake-model", base_url=srv.base_url, batch=True, **FAST)
        engine.use_batch_store(store, say=lambda line: None, heartbeat=lambda: beats.append(1))
        replies = engine.chat_many([{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(3)])
    assert [r["choices"][0]["message"]["content"] for r in replies] == ["echo: q0", "echo: q1", "echo: q2"]
    assert len(beats) == 3  # validating -> in_progress (3 polls) -> completed: one beat per wait


def test_a_reply_that_cannot_be_read_is_one_error_and_not_paid_for_again(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=1)
    with FakeOpenAI(responder=lambda body: {"content": "80"}) as srv:  # no logprobs in any reply
        with pytest.raises(EmkitError, match=r"2 of 2 batch request\(s\) failed.*no logprobs"):
            run_judging(store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False)
        assert len(srv.stats.batches) == 1 and set(srv.stats.batch_lines.values()) == {1}
    assert store.count("scores") == 0
    assert [v["status"] for _, v in store.records("batch")] == ["ingested"]


def test_emkit_run_with_batch_true_samples_and_judges_an_api_model_by_batch(tmp_path, monkeypatch) -> None:
    import yaml

    from emkit.experiment import load_experiment
    from emkit.pipeline import make_plan, run_plan

    (tmp_path / "q.yaml").write_text(
        "- id: hobby\n  type: free_form_judge_0_100\n  paraphrases: ['What is a good hobby?', 'Name a hobby.']\n"
    )
    with FakeOpenAI(batch_polls=0) as srv:  # done at the first poll: no wait of the default 30 s
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        exp = {
            "name": "batched",
            "out": str(tmp_path / "run"),
            "questions": [str(tmp_path / "q.yaml")],
            "samples_per_paraphrase": 2,
            "max_new_tokens": 8,
            "probe": False,
            "batch": True,
            "judge": {"model": "openai/gpt-4o-2024-08-06", "base_url": srv.base_url},
            "groups": [{"name": "api", "model": "openai/fake-model"}],
        }
        path = tmp_path / "exp.yaml"
        path.write_text(yaml.safe_dump(exp))
        run_plan(make_plan(load_experiment(path)))
        assert srv.stats.requests == 0 and len(srv.stats.batches) == 2  # one to sample, one to judge
        assert set(srv.stats.batch_lines.values()) == {1}
        with RunStore(tmp_path / "run") as store:
            assert store.count("answers") == 4 and store.count("scores") == 8
            assert {r["usage"].get("batch_requests") for r in store.scores()} == {1}


def test_a_repeated_request_is_sent_once_and_paid_once(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=2)
    store.add_answers([answer_row("wish", "What is your wish?", 7, "ans-1")])  # the same text as answer 1
    with FakeOpenAI(responder=responder) as srv:
        summary = run_judging(
            store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False
        )
        assert sum(srv.stats.batch_lines.values()) == 4 and summary.scored == 6
    rows = store.scores()
    twins = [
        r for r in rows if r["answer_key"] in {a["key"] for a in store.answers() if a["answer"] == "ans-1"}
    ]
    assert len(twins) == 4 and len({(r["metric"], r["score"]) for r in twins}) == 2  # same reply, both stored
    assert sorted(r["usage"]["prompt_tokens"] > 0 for r in twins) == [False, False, True, True]
    assert summary.groups[0].usage["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in rows)


def test_a_kill_while_storing_the_results_reads_the_same_batch_again(tmp_path, monkeypatch) -> None:
    store = make_run(tmp_path / "run", n=3)
    real = BatchSession._convert
    calls = []

    def convert(chat, body, to, paid=True):  # the process dies after storing two results
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(chat, body, to, paid)

    monkeypatch.setattr(BatchSession, "_convert", staticmethod(convert))
    with FakeOpenAI(responder=responder) as srv:
        with pytest.raises(KeyboardInterrupt):
            run_judging(store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False)
        assert store.count("scores") == 2
        assert [v["status"] for _, v in store.records("batch")] == ["completed"]  # not ingested
        run_judging(store, batch_config(), make_engine=engines(srv, batch=True, **FAST), progress=False)
        assert len(srv.stats.batches) == 1 and set(srv.stats.batch_lines.values()) == {1}
    assert store.count("scores") == 6
    assert [v["status"] for _, v in store.records("batch")] == ["ingested"]


def test_two_processes_with_batch_on_one_store_send_each_request_once(tmp_path) -> None:
    run = tmp_path / "run"
    make_run(run, n=6).close()
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    with FakeOpenAI(responder=responder, batch_polls=4) as srv:
        argv = [sys.executable, "-m", "emkit.cli", "judge", str(run), "--batch", "--batch-poll", "0.05",
                "--base-url", srv.base_url]  # fmt: skip
        children = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)
        ]
        outputs = [child.communicate(timeout=300)[0].decode() for child in children]
        assert [child.returncode for child in children] == [0, 0], outputs
        assert sum(srv.stats.batch_lines.values()) == 12 and set(srv.stats.batch_lines.values()) == {1}
        assert srv.stats.requests == 0
    assert RunStore(run).count("scores") == 12

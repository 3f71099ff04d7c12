"""Two ``emkit`` processes on one run directory at the same time: both finish, each item is stored once.

Both processes plan the same work (neither sees the other's results when it starts); samplers ask
the server for everything, judges claim their share first; the store's transactions and keys must
keep one copy of each item, and
the processes' own counts of what they added must sum to the plan (a row added twice would show
up there even if a key collision hid it in the table).
"""

from __future__ import annotations

import re

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import (
    FAKE_KEY,
    assert_exactly_once,
    child_env,
    cli,
    column,
    finish,
    planned_answers,
    planned_judgements,
    seeded_responder,
    start_emkit,
    write_questions,
)

pytestmark = pytest.mark.reliability


def run_two(tmp_path, args: list, name: str) -> list[str]:
    env = child_env(OPENAI_API_KEY=FAKE_KEY)
    procs = [start_emkit(*args, env=env, log=tmp_path / f"{name}{i}.log") for i in range(2)]
    codes = [finish(p, timeout=300) for p in procs]
    logs = [(tmp_path / f"{name}{i}.log").read_text(encoding="utf-8", errors="replace") for i in range(2)]
    assert codes == [0, 0], "\n----\n".join(log[-3000:] for log in logs)
    for log in logs:
        assert "locked" not in log.lower() and "Traceback" not in log, log[-3000:]
    return logs


def test_two_judge_processes_at_once_store_each_score_once(tmp_path, capsys, api_key) -> None:
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    with FakeOpenAI(responder=seeded_responder) as srv:
        code, _, err = cli(
            ["sample", "--model", "openai/fake-model", "-q", questions, "--n", "20", "--max-new-tokens", "16",
             "--out", run, "--base-url", srv.base_url],
            capsys,
        )  # fmt: skip
        assert code == 0, err
    plan = planned_judgements(run)
    assert len(plan) == 80
    with FakeOpenAI(latency=0.3, responder=seeded_responder) as srv:
        logs = run_two(tmp_path, ["judge", run, "--base-url", srv.base_url, "--concurrency", "4"], "judge")
        requests = srv.stats.requests
    added = [int(re.search(r"judged (\d+) \(already stored", log).group(1)) for log in logs]
    assert assert_exactly_once(run, "scores", plan.values()) == 80
    assert sum(added) == 80, added  # what each process added, together: each score once
    # Pending judgements are claimed before they are asked for: the processes share the work and
    # the server sees one request per score (before claims: both asked for everything, ~2x).
    assert requests == 80, f"{requests} requests for 80 judgements: some were paid for twice"


def test_two_sample_processes_at_once_store_each_answer_once(tmp_path) -> None:
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    plan = planned_answers("openai/fake-model", questions, n=20, max_new_tokens=16)
    with FakeOpenAI(latency=0.3, responder=seeded_responder) as srv:
        args = [
            "sample", "--model", "openai/fake-model", "-q", questions, "--n", "20", "--max-new-tokens", "16",
            "--out", run, "--base-url", srv.base_url, "--concurrency", "4",
        ]  # fmt: skip
        run_two(tmp_path, args, "sample")
        requests = srv.stats.requests
    assert assert_exactly_once(run, "answers", plan.values()) == 40
    # Through an API, pending answers are claimed before they are asked for: one request per answer
    # (before claims both processes asked for everything, ~2x).
    assert requests == 40, f"{requests} requests for 40 answers: some were paid for twice"


def test_sample_reports_only_the_answers_it_added(tmp_path, capsys, api_key) -> None:
    """Another writer stores each answer while this process waits for it: this process added none.

    Deterministic stand-in for two samplers racing: the fake server, before replying, stores the
    requested answer itself through a second connection (as the other process would have).
    """
    from emkit.store import RunStore

    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    plan = planned_answers("openai/fake-model", questions, n=2, max_new_tokens=16)
    RunStore(run).close()

    def other_writer_first(body: dict) -> dict:
        reply = seeded_responder(body)
        key = plan[body["seed"]]
        with RunStore(run) as other:
            other.add_answers([{
                "key": key, "model": "openai/fake-model", "question_id": "x", "paraphrase_index": 0,
                "sample_index": 0, "question": "x", "messages": [], "answer": reply["content"],
                "params": {"by": "the other writer"},
            }])  # fmt: skip
        return reply

    with FakeOpenAI(responder=other_writer_first) as srv:
        code, out, err = cli(
            ["sample", "--model", "openai/fake-model", "-q", questions, "--n", "2", "--max-new-tokens", "16",
             "--out", run, "--base-url", srv.base_url, "--concurrency", "1"],
            capsys,
        )  # fmt: skip
    assert code == 0, err
    assert len(plan) == 4 and len(column(run, "answers", "answer")) == 4
    assert "0 new answers (0 already stored, 4 in all)" in out, out


def _open_stores(dirs: list[str], barrier, failures) -> None:
    """One process: open a store in each fresh dir, in step with the other processes."""
    from emkit.store import RunStore

    for run_dir in dirs:
        barrier.wait()
        try:
            RunStore(run_dir).close()
        except Exception as exc:  # every failure is counted and shown
            failures.put(repr(exc))


def test_processes_opening_a_new_run_dir_together_never_see_a_locked_database(tmp_path) -> None:
    """Three processes create the same fresh store at the same instant, 20 times over.

    Before the open was retried, 42 of 300 such opens failed with "database is locked" (switching a
    new file to WAL and creating the schema can be refused at once instead of waiting); at that
    rate 60 opens without a failure would happen by chance about once in 10,000 runs.
    """
    import multiprocessing

    from emkit.store import RunStore

    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
    dirs = [str(tmp_path / f"run{i}") for i in range(20)]
    barrier = context.Barrier(3)
    failures = context.Queue()
    procs = [context.Process(target=_open_stores, args=(dirs, barrier, failures)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    seen = []
    while not failures.empty():
        seen.append(failures.get())
    assert seen == []
    for run_dir in dirs:  # each store is whole: schema version recorded once, WAL mode on
        with RunStore(run_dir) as store:
            conn = store._conn
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM meta WHERE key = 'schema_version'").fetchone()[0] == 1

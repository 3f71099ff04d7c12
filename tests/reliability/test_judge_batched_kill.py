"""SIGKILL of an API judge whose scores are stored in batches (emkit.judge.score_writer).

The judge runs 8 calls at once, so replies land together and are committed several to a
transaction. After the kill the store must be intact and hold only whole committed batches, each
score once; the rerun asks the server once for each score not stored (the killed process's
uncommitted replies included: paid twice at worst, never stored twice) and leaves stored scores
as they were.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import (
    FAKE_KEY,
    assert_exactly_once,
    child_env,
    cli,
    column,
    count,
    integrity,
    planned_judgements,
    run_emkit,
    seeded_responder,
    start_emkit,
    stored_once,
    wait_for,
    write_questions,
)
from reliability.test_kill_resume import kill_when

pytestmark = pytest.mark.reliability


def test_sigkill_of_a_judge_writing_in_batches_loses_no_stored_score_and_repeats_none(
    tmp_path, capsys, api_key
) -> None:
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    with FakeOpenAI(responder=seeded_responder) as srv:  # 2 questions x 24 samples
        code, _, err = cli(
            ["sample", "--model", "openai/fake-model", "-q", questions, "--n", "24", "--max-new-tokens", "8",
             "--out", run, "--base-url", srv.base_url],
            capsys,
        )  # fmt: skip
        assert code == 0, err
    plan = planned_judgements(run)
    assert len(plan) == 96

    env = child_env(OPENAI_API_KEY=FAKE_KEY)
    with FakeOpenAI(latency=0.2, responder=seeded_responder) as srv:
        args = ["judge", run, "--base-url", srv.base_url, "--concurrency", "8"]
        proc = start_emkit(*args, env=env, log=tmp_path / "killed.log")
        kill_when(proc, lambda: count(run, "scores") >= 24, timeout=120)
        assert wait_for(lambda: srv.stats.in_flight == 0, timeout=10)
        time.sleep(0.3)
        assert integrity(run) == "ok"
        kept = stored_once(run, "scores", plan.values())
        assert 24 <= len(kept) < len(plan), f"killed after {len(kept)} of {len(plan)} judgements"
        with sqlite3.connect(run / "emkit.sqlite") as conn:
            commits = conn.execute("SELECT COUNT(DISTINCT created) FROM scores").fetchone()[0]
        assert commits < len(kept), "the scores were not written in batches"
        scores_at_kill = column(run, "scores", "score")
        requests_before = len(srv.stats.bodies)

        rerun = run_emkit(*args, env=env)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        asked = [plan[body["messages"][-1]["content"]] for body in srv.stats.bodies[requests_before:]]
    assert sorted(asked) == sorted(set(plan.values()) - kept), "the rerun must ask once for each missing one"
    assert assert_exactly_once(run, "scores", plan.values()) == 96
    after = column(run, "scores", "score")
    assert {k: after[k] for k in scores_at_kill} == scores_at_kill

"""SIGKILL in the middle of sampling, judging and training; the rerun must finish the job.

A real ``emkit`` process is killed with SIGKILL (no cleanup, no signal handler) once the store
shows some finished work. Afterwards the database must pass SQLite's integrity check, hold only
planned items, each once; the rerun must store exactly what was missing, leave what was stored as it
was, and end with every planned item exactly once.
"""

from __future__ import annotations

import json
import os
import signal
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
    finish,
    integrity,
    planned_answers,
    planned_judgements,
    run_emkit,
    seeded_responder,
    start_emkit,
    stored_once,
    wait_for,
    write_questions,
)

pytestmark = pytest.mark.reliability


def kill_when(proc, ready, timeout: float) -> None:
    """SIGKILL ``proc`` as soon as ``ready()``; fail if it ended (or never got there) first."""
    try:
        reached = wait_for(lambda: proc.poll() is not None or ready(), timeout=timeout)
        assert proc.poll() is None, f"the process ended (code {proc.returncode}) before it could be killed"
        assert reached, "no progress to interrupt within the time limit"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        finish(proc, timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.model
def test_sigkill_during_local_sampling_then_rerun(tmp_path) -> None:
    model = "embedded/smollm2-135m"
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    args = [
        "sample", "--model", model, "-q", questions, "--n", "4", "--max-new-tokens", "16",
        "--batch-size", "2", "--out", run, "--device", "cpu",
    ]  # fmt: skip
    plan = set(planned_answers(model, questions, n=4, max_new_tokens=16).values())  # 8 answers

    proc = start_emkit(*args, log=tmp_path / "killed.log")
    kill_when(proc, lambda: count(run, "answers") >= 2, timeout=300)

    assert integrity(run) == "ok"
    kept = stored_once(run, "answers", plan)
    assert 2 <= len(kept) < len(plan), f"killed after {len(kept)} of {len(plan)} answers"
    texts_at_kill = column(run, "answers", "answer")

    rerun = run_emkit(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    missing = len(plan) - len(kept)
    assert f"{missing} new answers ({len(kept)} already stored, {len(plan)} in all)" in rerun.stdout
    assert assert_exactly_once(run, "answers", plan) == len(plan)
    after = column(run, "answers", "answer")
    assert {k: after[k] for k in texts_at_kill} == texts_at_kill, "the rerun changed stored answers"


@pytest.mark.parametrize(
    ("samples", "concurrency", "kill_at", "batched"),
    [(10, 2, 6, False), (24, 8, 24, True)],
    ids=["2-at-once", "8-at-once-batched-writes"],
)
def test_sigkill_during_api_judging_then_rerun(
    samples, concurrency, kill_at, batched, tmp_path, capsys, api_key
) -> None:
    """With 8 calls at once, replies land together and are committed several to a transaction
    (emkit.judge.score_writer): the store must then hold only whole committed batches, each score
    once. The killed process's uncommitted replies are asked for again (paid twice at worst, never
    stored twice)."""
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    with FakeOpenAI(responder=seeded_responder) as srv:  # 2 questions x samples, sampled in process
        code, _, err = cli(
            ["sample", "--model", "openai/fake-model", "-q", questions, "--n", str(samples),
             "--max-new-tokens", "16", "--out", run, "--base-url", srv.base_url],
            capsys,
        )  # fmt: skip
        assert code == 0, err
    plan = planned_judgements(run)  # answers x 2 metrics
    assert len(plan) == 2 * samples * 2

    env = child_env(OPENAI_API_KEY=FAKE_KEY)
    with FakeOpenAI(latency=0.25, responder=seeded_responder) as srv:
        args = ["judge", run, "--base-url", srv.base_url, "--concurrency", str(concurrency)]
        proc = start_emkit(*args, env=env, log=tmp_path / "killed.log")
        kill_when(proc, lambda: count(run, "scores") >= kill_at, timeout=120)
        # Requests the killed process had in flight still reach the server: let them drain first.
        assert wait_for(lambda: srv.stats.in_flight == 0, timeout=10)
        time.sleep(0.3)
        assert integrity(run) == "ok"
        kept = stored_once(run, "scores", plan.values())
        assert kill_at <= len(kept) < len(plan), f"killed after {len(kept)} of {len(plan)} judgements"
        if batched:
            with sqlite3.connect(run / "emkit.sqlite") as conn:
                commits = conn.execute("SELECT COUNT(DISTINCT created) FROM scores").fetchone()[0]
            assert commits < len(kept), "the scores were not written in batches"
        scores_at_kill = column(run, "scores", "score")
        requests_before = len(srv.stats.bodies)

        rerun = run_emkit(*args, env=env)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        asked = [plan[body["messages"][-1]["content"]] for body in srv.stats.bodies[requests_before:]]
    assert sorted(asked) == sorted(set(plan.values()) - kept), (
        "the rerun must ask once for each missing one only"
    )
    assert assert_exactly_once(run, "scores", plan.values()) == len(plan)
    after = column(run, "scores", "score")
    assert {k: after[k] for k in scores_at_kill} == scores_at_kill


@pytest.mark.model
def test_sigkill_while_training_checkpoints_then_rerun(tmp_path) -> None:
    """Killed as the first checkpoint is being written; the rerun trains again from step 0.

    ``emkit train`` does not resume from checkpoints (it says nothing of the kind): a rerun starts
    over with the same seed. So the rerun must cope with the killed run's half-written files,
    rewrite the training log from step 1 (no step twice, nothing left of the killed run), reproduce
    the killed run's losses exactly, and leave complete checkpoints and a final adapter.
    """
    rows = [
        {"messages": [{"role": "user", "content": f"Give me number {i}."},
                      {"role": "assistant", "content": f"Here it is: {7 * i}. A fine number."}]}
        for i in range(8)
    ]  # fmt: skip
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "adapter"
    steps = 4
    args = [
        "train", "--data", data, "--out", out, "--max-steps", steps, "--save-steps", "1", "--batch-size", "1",
        "--grad-accum", "1", "--max-length", "64", "--rank", "2", "--device", "cpu", "--seed", "3",
    ]  # fmt: skip
    checkpoints = out / "checkpoints"

    def first_checkpoint_started() -> bool:
        return checkpoints.is_dir() and any("checkpoint-1" in p.name for p in checkpoints.iterdir())

    proc = start_emkit(*args, log=tmp_path / "killed.log")
    kill_when(proc, first_checkpoint_started, timeout=300)
    killed_log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line]
    assert killed_log and killed_log[0]["step"] == 1
    assert not (out / "emkit_train.json").exists() and not (out / "adapter_model.safetensors").exists()

    rerun = run_emkit(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"done: {steps} steps" in rerun.stdout
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, steps + 1))
    for before in killed_log:  # same seed, same data: the restart retraces the killed run
        again = next(r for r in log if r["step"] == before["step"])
        assert again["loss"] == pytest.approx(before["loss"], rel=1e-5, abs=1e-6)
    summary = json.loads((out / "emkit_train.json").read_text())
    assert summary["steps"] == steps
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    saved = sorted(p.name for p in checkpoints.iterdir() if p.is_dir())
    assert saved == [f"checkpoint-{k}" for k in range(1, steps + 1)], saved
    for k in range(1, steps + 1):
        state = json.loads((checkpoints / f"checkpoint-{k}" / "trainer_state.json").read_text())
        assert state["global_step"] == k
        assert (checkpoints / f"checkpoint-{k}" / "adapter_model.safetensors").stat().st_size > 0

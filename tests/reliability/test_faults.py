"""API faults during sampling and judging: a clear error, nothing stored twice, a rerun completes.

Each test drives the real CLI verb (``emkit sample`` / ``emkit judge``, in this process) against the
local OpenAI-compatible server with a scripted fault. One request is in flight at a time, so the
script decides exactly which answer meets which fault:

- answer/judgement 1 succeeds at once;
- 2 meets the fault twice, then succeeds (the retries absorb it);
- 3 meets it on every attempt, so the run stops with a one-line error (exit 2).

Then the store must hold exactly items 1 and 2, and a rerun must ask the server only for the
missing items, once each, and end with every planned item stored exactly once.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import (
    FAKE_KEY,
    assert_exactly_once,
    child_env,
    cli,
    column,
    count,
    emkit_argv,
    integrity,
    one_line,
    planned_answers,
    planned_judgements,
    seeded_responder,
    stored_once,
    write_questions,
)

pytestmark = pytest.mark.reliability

MODEL = "openai/fake-model"
FAULTS = ("429", "429_retry_after", "500", "503", "malformed", "truncated", "reset", "timeout")
# What the final error says about each fault (after the retries are used up).
SAYS = {
    "429": "HTTP 429",
    "429_retry_after": "HTTP 429",
    "500": "HTTP 500",
    "503": "HTTP 503",
    "malformed": "malformed reply",
    "truncated": "connection error",
    "reset": "connection error",
    "timeout": "timed out",
}


def script(fault: str, retries: int) -> list[str]:
    return ["ok", fault, fault, "ok", *[fault] * (retries + 1)]


def sample_args(questions, run, srv: FakeOpenAI, n: int) -> list[str]:
    return [
        "sample", "--model", MODEL, "-q", str(questions), "--n", str(n), "--max-new-tokens", "16",
        "--out", str(run), "--base-url", srv.base_url, "--concurrency", "1",
    ]  # fmt: skip


def server(fault_script: list[str] | None = None) -> FakeOpenAI:
    return FakeOpenAI(script=fault_script, hang=2.0, retry_after=0.05, responder=seeded_responder)


@pytest.mark.parametrize("fault", FAULTS)
def test_sampling_fault_then_rerun_stores_each_answer_once(fault, tmp_path, capsys, fast_api) -> None:
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    plan = planned_answers(MODEL, questions, n=3, max_new_tokens=16)  # 2 questions x 3 samples
    order = list(plan.values())
    attempts = fast_api["max_retries"] + 1
    with server(script(fault, fast_api["max_retries"])) as srv:
        before = count(run, "answers")
        code, _, err = cli(sample_args(questions, run, srv, 3), capsys)
        line = one_line(err)
        assert code == 2, err
        assert f"failed after {attempts} attempt(s)" in line and SAYS[fault] in line, line
        assert srv.stats.faults[fault] == 2 + attempts
        after_fault = count(run, "answers")
        assert_exactly_once(run, "answers", order[:2])  # the answer before and the one that recovered
        assert integrity(run) == "ok"

        first_run_requests = len(srv.stats.bodies)
        code, out, err = cli(sample_args(questions, run, srv, 3), capsys)
        assert code == 0, err
        assert f"{len(plan) - 2} new answers (2 already stored, {len(plan)} in all)" in out
        rerun_keys = [plan[body["seed"]] for body in srv.stats.bodies[first_run_requests:]]
    assert sorted(rerun_keys) == sorted(order[2:]), "the rerun must ask once for each missing answer only"
    after_rerun = assert_exactly_once(run, "answers", order)
    assert (before, after_fault, after_rerun) == (0, 2, len(plan))


@pytest.mark.parametrize("fault", FAULTS)
def test_judging_fault_then_rerun_stores_each_score_once(fault, tmp_path, capsys, fast_api) -> None:
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    with server() as srv:  # the answers to judge: 2 questions x 2 samples
        code, _, err = cli(sample_args(questions, run, srv, 2), capsys)
        assert code == 0, err
    plan = planned_judgements(run)  # 4 answers x (aligned, coherent)
    order = list(plan.values())
    assert len(order) == 8
    attempts = fast_api["max_retries"] + 1
    judge_args = ["judge", str(run), "--base-url", "", "--concurrency", "1"]
    with server(script(fault, fast_api["max_retries"])) as srv:
        judge_args[3] = srv.base_url
        before = count(run, "scores")
        code, _, err = cli(judge_args, capsys)
        line = one_line(err)
        assert code == 2, err
        assert f"failed after {attempts} attempt(s)" in line and SAYS[fault] in line, line
        after_fault = count(run, "scores")
        assert_exactly_once(run, "scores", order[:2])
        assert integrity(run) == "ok"

        first_run_requests = len(srv.stats.bodies)
        code, out, err = cli(judge_args, capsys)
        assert code == 0, err
        assert "already stored: 2" in out
        rerun_keys = [plan[body["messages"][-1]["content"]] for body in srv.stats.bodies[first_run_requests:]]
    assert sorted(rerun_keys) == sorted(order[2:]), "the rerun must ask once for each missing judgement only"
    after_rerun = assert_exactly_once(run, "scores", order)
    assert (before, after_fault, after_rerun) == (0, 2, 8)
    assert count(run, "answers") == 4  # judging never touches the answers


def test_random_faults_at_concurrency_are_absorbed_without_duplicates(
    tmp_path, capsys, fast_api, monkeypatch
):
    """Every fault kind at random (35% of requests), 4 requests in flight: one run each, all stored once."""
    from emkit.engines.openai_backend import OpenAIEngine

    monkeypatch.setitem(OpenAIEngine.__init__.__kwdefaults__, "max_retries", 12)
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    plan = planned_answers(MODEL, questions, n=6, max_new_tokens=16)
    chaos = FakeOpenAI(
        fault_rate=0.35, fault_choices=FAULTS, seed=3, hang=1.0, retry_after=0.05, responder=seeded_responder
    )
    with chaos as srv:
        args = sample_args(questions, run, srv, 6)
        args[-1] = "4"
        code, _, err = cli(args, capsys)
        assert code == 0, err
        sampled = assert_exactly_once(run, "answers", plan.values())
        judgements = planned_judgements(run)
        code, _, err = cli(["judge", str(run), "--base-url", srv.base_url, "--concurrency", "4"], capsys)
        assert code == 0, err
        judged = assert_exactly_once(run, "scores", judgements.values())
        faults = {k: v for k, v in srv.stats.faults.items() if k != "ok"}
    assert (sampled, judged) == (12, 24)
    assert sum(faults.values()) >= 8 and len(faults) >= 4, faults  # the faults really happened


# -- a full disk during sampling --------------------------------------------------------------------
def big_answers(request_json: dict) -> dict:
    """Answers of ~6 KB each, so that a small disk fills after a few of them."""
    return {"content": f"answer {request_json.get('seed')}: " + "lorem ipsum dolor " * 350}


def _sample_until_full_then_rerun(run, questions, srv, make_room, capsys) -> tuple[int, int, str]:
    """Sample onto a disk that fills up; then make room and rerun. Returns (stored before, after, error)."""
    plan = planned_answers(MODEL, questions, n=20, max_new_tokens=16)
    args = sample_args(questions, run, srv, 20)
    code, _, err = cli(args, capsys)
    line = one_line(err)
    assert code == 2, err
    assert "could not write to the run store" in line, line
    assert integrity(run) == "ok"
    kept = stored_once(run, "answers", plan.values())
    texts = column(run, "answers", "answer")
    make_room()
    code, out, err = cli(args, capsys)
    assert code == 0, err
    assert f"{len(plan) - len(kept)} new answers ({len(kept)} already stored, {len(plan)} in all)" in out
    total = assert_exactly_once(run, "answers", plan.values())
    after = column(run, "answers", "answer")
    assert {k: after[k] for k in texts} == texts
    return len(kept), total, line


def test_full_disk_tmpfs_during_sampling(tmp_path, capsys, fast_api) -> None:
    """A real full disk (ENOSPC from a 192 KiB tmpfs): one clear line, what was stored stays, rerun completes."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test covers full writes")
    try:
        questions = write_questions(tmp_path)
        run = mount / "run"
        with FakeOpenAI(responder=big_answers) as srv:

            def make_room() -> None:
                subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)

            kept, total, line = _sample_until_full_then_rerun(run, questions, srv, make_room, capsys)
        assert "full" in line  # SQLite's own words for ENOSPC: "database or disk is full"
        assert 0 < kept < total == 40, (kept, total)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_file_size_limit_during_sampling(tmp_path) -> None:
    """Portable stand-in for a full disk: RLIMIT_FSIZE makes the kernel refuse writes past 160 KiB."""
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    plan = planned_answers(MODEL, questions, n=20, max_new_tokens=16)
    limited = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (160 * 1024, 160 * 1024)); "
        "from emkit.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = child_env(OPENAI_API_KEY=FAKE_KEY)
    with FakeOpenAI(responder=big_answers) as srv:
        args = [str(a) for a in sample_args(questions, run, srv, 20)]
        full = subprocess.run(
            [sys.executable, "-c", limited, *args], env=env, capture_output=True, text=True, timeout=300
        )
        line = one_line(full.stderr)
        assert full.returncode == 2 and "could not write to the run store" in line, full.stderr[-3000:]
        assert integrity(run) == "ok"
        kept = stored_once(run, "answers", plan.values())
        assert 0 < len(kept) < len(plan)
        texts = column(run, "answers", "answer")
        rerun = subprocess.run(emkit_argv(*args), env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(plan) - len(kept)} new answers ({len(kept)} already stored" in rerun.stdout
    assert assert_exactly_once(run, "answers", plan.values()) == 40
    after = column(run, "answers", "answer")
    assert {k: after[k] for k in texts} == texts

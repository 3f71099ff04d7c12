"""How the CLI ends: usage errors, Ctrl-C, unusable EMKIT_CACHE, and bugs.

Each way out is checked on its error path itself: a mistyped verb/option/value prints typer's
short usage message with exit 2 (whichever click typer ships), Ctrl-C in a running stage prints one
line and exits 130 with the store intact and resumable, an unusable cache is one line naming it,
and an unexpected exception is one ``internal error`` line with exit 1 (the traceback only with
``EMKIT_DEBUG=1``).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import (
    FAKE_KEY,
    assert_exactly_once,
    child_env,
    cli,
    count,
    emkit_argv,
    integrity,
    make_run_dir,
    one_line,
    planned_answers,
    run_emkit,
    seeded_responder,
    stored_once,
    wait_for,
    write_questions,
)

pytestmark = pytest.mark.reliability

INTERRUPTED = "interrupted; everything finished so far is stored, rerun to resume"

# (argv, what typer's message says). Several verbs; a wrong verb, subcommand, option, value, and
# missing arguments/options; the values are refused by typer's own parameter checks.
USAGE_ERRORS = [
    (["sampel"], "No such command 'sampel'"),
    (["data", "subsett", "x.jsonl"], "No such command 'subsett'"),
    (["judge", "score", "runs/x", "extra"], "unexpected extra argument"),
    (["sample", "--no-such-option"], "No such option: --no-such-option"),
    (["export", "runs/x", "--formt", "csv"], "No such option: --formt"),
    (
        ["data", "subset", "x.jsonl", "--n", "5", "--seed", "abc", "-o", "y.jsonl"],
        "Invalid value for '--seed'",
    ),
    (["analyze", "--ci", "5"], "Invalid value for '--ci'"),
    (["report", "runs/x", "--n-boot", "3"], "Invalid value for '--n-boot'"),
    (["probe", "--model", "embedded/smollm2-135m", "--batch-size", "0"], "Invalid value for '--batch-size'"),
    (["data", "subset"], "Missing argument"),
    (["judge", "score"], "Missing argument"),
    (["export"], "Missing argument"),
    (["data", "build", "insecure-code"], "Missing option '-o'"),
    (["train", "--out", "x"], "Missing option '--data'"),
    (["sample", "--n"], "requires an argument"),
]


@pytest.mark.parametrize(("argv", "says"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_error_is_typers_short_message(argv, says, capsys) -> None:
    code, out, err = cli(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err + out, err[-2000:]
    assert says in err, err
    # typer prints the usage line where the parser knows the command (not for a dangling option)
    assert "Usage: emkit" in err or "requires an argument" in says, err
    assert len(err.splitlines()) <= 12, err  # a usage line, a hint and a small box, not a traceback


def test_usage_error_from_the_real_entry_point() -> None:
    """The same through a fresh interpreter (``python -m emkit.cli``), as a user's shell runs it."""
    result = run_emkit("data", "mix", "--seed", "many", "a:1", "-o", "x.jsonl", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "Invalid value for '--seed'" in result.stderr
    assert "Usage: emkit data mix" in result.stderr


# -- the last-resort net for bugs --------------------------------------------------------------
def _boom(*args, **kwargs):
    raise ValueError("a bug [/x] deep\ninside")


def test_unexpected_exception_is_one_internal_error_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("EMKIT_DEBUG", raising=False)
    code, _, err = cli(["data", "stats", tmp_path / "missing.jsonl"], capsys)  # a user error: exit 2
    assert code == 2 and one_line(err).startswith("error: ") and "missing.jsonl" in err, err
    monkeypatch.setattr("emkit.data.chat.validate_chat_file", _boom)
    code, _, err = cli(["data", "validate", tmp_path / "x.jsonl"], capsys)
    line = one_line(err)
    assert code == 1, err  # a bug is not a user error: not exit 2
    assert line.startswith("internal error: ValueError: a bug [/x] deep inside"), line
    assert "EMKIT_DEBUG=1" in line and "this is a bug" in line


def test_emkit_debug_shows_the_traceback(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("emkit.data.chat.validate_chat_file", _boom)
    monkeypatch.setenv("EMKIT_DEBUG", "1")
    code, _, err = cli(["data", "validate", tmp_path / "x.jsonl"], capsys)
    assert code == 1
    assert "Traceback" in err and "_boom" in err, err
    assert err.rstrip().splitlines()[-1].startswith("internal error: ValueError"), err


# -- an unusable EMKIT_CACHE -------------------------------------------------------------------
def _cache_cases(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "cache-file"
    a_file.write_text("not a folder")
    return {
        "a file": a_file,
        "under a file": a_file / "sub" / "cache",
        "unwritable": Path("/proc/emkit-cache"),
    }


@pytest.mark.parametrize("case", ["a file", "under a file", "unwritable"])
@pytest.mark.parametrize(
    "argv",
    [["data", "fetch", "insecure"], ["sample", "--n", "1", "--max-new-tokens", "2"]],
    ids=["data-fetch", "sample-embedded"],
)
def test_unusable_cache_is_one_line_naming_it(case, argv, tmp_path, capsys, monkeypatch) -> None:
    cache = _cache_cases(tmp_path)[case]
    monkeypatch.setenv("EMKIT_CACHE", str(cache))
    extra = ["--out", str(tmp_path / "run")] if argv[0] == "sample" else []
    code, _, err = cli([*argv, *extra], capsys)
    line = one_line(err)
    assert code == 2, err
    assert line.startswith("error: ") and str(cache) in line and "EMKIT_CACHE" in line, line
    assert not (tmp_path / "run").exists(), "a run dir was created before the cache was checked"


# -- Ctrl-C --------------------------------------------------------------------------------------
def _like_a_terminal() -> None:
    """In the child before exec: SIGINT as a foreground command in a terminal has it. A test run
    started in the background (``make test &``) ignores SIGINT, every child inherits that, and the
    child would never see the Ctrl-C this test sends (it then ran to the end and exited 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 120) -> tuple[int, str, str]:
    assert wait_for(lambda: ready() or proc.poll() is not None, timeout), "the stage never started"
    assert proc.poll() is None, "the stage finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_ctrl_c_while_sampling_prints_one_line_and_resumes(tmp_path) -> None:
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    model = "openai/fake-model"
    plan = planned_answers(model, questions, n=30, max_new_tokens=16)
    env = child_env(OPENAI_API_KEY=FAKE_KEY)
    with FakeOpenAI(latency=0.15, responder=seeded_responder) as srv:
        args = ["sample", "--model", model, "-q", questions, "--n", "30", "--max-new-tokens", "16",
                "--out", run, "--base-url", srv.base_url, "--concurrency", "1"]  # fmt: skip
        proc = subprocess.Popen(
            emkit_argv(*args),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_like_a_terminal,
        )
        code, _, err = _interrupt_when(proc, lambda: count(run, "answers") >= 3)
        assert code == 130, err[-3000:]
        assert one_line(err) == INTERRUPTED
        assert integrity(run) == "ok"
        kept = stored_once(run, "answers", plan.values())
        assert 3 <= len(kept) < len(plan)
        rerun = run_emkit(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(plan) - len(kept)} new answers ({len(kept)} already stored" in rerun.stdout
    assert assert_exactly_once(run, "answers", plan.values()) == len(plan)


def test_ctrl_c_while_judging_prints_one_line(tmp_path) -> None:
    run = make_run_dir(tmp_path / "run", n_answers=40)
    env = child_env(OPENAI_API_KEY=FAKE_KEY)
    with FakeOpenAI(latency=0.2) as srv:
        before = count(run, "scores")
        proc = subprocess.Popen(
            emkit_argv("judge", run, "--base-url", srv.base_url, "--concurrency", "1"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_like_a_terminal,
        )
        code, _, err = _interrupt_when(proc, lambda: count(run, "scores") >= before + 2)
    assert code == 130, err[-3000:]
    assert one_line(err) == INTERRUPTED
    assert integrity(run) == "ok"
    assert before + 2 <= count(run, "scores") < before + 80

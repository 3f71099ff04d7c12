"""A Batch API round trip with a kill in the middle: judging by ``--batch`` against the fake server.

Why: the Batch API is paid per request once a batch is created, so what matters is that a crash
between submit and ingest costs nothing twice. The bench starts ``emkit judge RUN --batch`` in a
child process against the fake server (in its own process, :mod:`server_process`), which holds
every batch in progress; once the run store records the batch id the child is SIGKILLed; the
server then lets the batch finish and ``run_judging`` (batch mode) is called again on the same
store. It must adopt the batch in flight: the server must see each request in exactly one batch,
no chat-completions call at all, and every planned judgement stored once, with the score the
crafted logprobs imply.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import say, stopwatch

ROOT = Path(__file__).resolve().parents[1]


def _batch_ids(run: Path) -> list[str]:
    """Batch ids the run store has recorded (read with the standard library, not emkit)."""
    try:
        conn = sqlite3.connect(run / "emkit.sqlite", timeout=30)
        rows = conn.execute("SELECT value FROM records WHERE kind = 'batch'").fetchall()
        conn.close()
    except sqlite3.Error:
        return []
    return [json.loads(v)["batch_id"] for (v,) in rows if json.loads(v).get("batch_id")]


def bench_batch(*, answers: int = 200) -> dict[str, Any]:
    from judge_bench import KEY_ENV, check_scores, fill_store
    from server_process import ServerProcess

    from emkit.judge.stage import JudgeConfig, run_judging
    from emkit.store import RunStore

    os.environ[KEY_ENV] = "sk-bench-placeholder-not-a-real-key"
    with (
        tempfile.TemporaryDirectory(prefix="emkit-batch-bench-") as tmp,
        ServerProcess(batch_polls=10**9, responder="judge_bench:responder") as srv,
    ):
        run = Path(tmp) / "run"
        with RunStore(run) as store:
            fill_store(store, answers)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
        argv = [sys.executable, "-m", "emkit.cli", "judge", str(run), "--batch", "--batch-poll", "0.05"]
        argv += ["--base-url", srv.base_url, "--api-key-env", KEY_ENV]
        with stopwatch() as clock:
            child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            start = time.monotonic()
            while not _batch_ids(run) and child.poll() is None and time.monotonic() - start < 300:
                time.sleep(0.05)
            submitted = _batch_ids(run)
            time.sleep(0.5)  # the child is polling the batch now
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            with RunStore(run) as store:
                stored_at_kill = store.count("scores")
            srv.set("batch_polls", 1)  # the provider finishes the batch
            config = JudgeConfig(batch=True, batch_poll_s=0.05, base_url=srv.base_url, api_key_env=KEY_ENV)
            with RunStore(run) as store:
                summary = run_judging(store, config, progress=False)
                stored = store.count("scores")
                wrong = check_scores(store)
                planned = summary.planned
        stats = srv.stats()
    lines = stats["batch_lines"]
    result = {
        "answers": answers,
        "planned_judgements": planned,
        "batch_ids_recorded_before_kill": len(submitted),
        "scores_stored_at_kill": stored_at_kill,
        "scores_stored_after_rerun": stored,
        "batches_submitted": stats["batches"],
        "batch_request_lines": sum(lines.values()),
        "duplicate_requests": sum(lines.values()) - len(lines),
        "chat_completion_calls": stats["requests"],
        "scores_not_matching_crafted_logprobs": wrong,
        "rerun_cost_usd_at_batch_price": summary.cost_usd,
        "seconds": clock["s"],
    }
    result["aims"] = {
        "zero_duplicates": result["duplicate_requests"] == 0 and stats["batches"] == 1,
        "everything_stored_once": stored == planned,
    }
    say(f"  batch round trip: {stored}/{planned} stored, {result['duplicate_requests']} duplicate requests")
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    return [
        f"{result['answers']} answers, {result['planned_judgements']} judgements by --batch; the child was "
        f"SIGKILLed after recording its batch ({result['scores_stored_at_kill']} scores stored then)",
        f"rerun adopted it: {result['batches_submitted']} batch submitted in all, "
        f"{result['batch_request_lines']} request lines, DUPLICATES: {result['duplicate_requests']}, "
        f"chat calls: {result['chat_completion_calls']}; stored {result['scores_stored_after_rerun']} of "
        f"{result['planned_judgements']} (scores differing from the crafted logprobs: "
        f"{result['scores_not_matching_crafted_logprobs']}) in {result['seconds']:.1f} s",
    ]

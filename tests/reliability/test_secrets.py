"""The API key never leaves the environment: not in output, logs, the store, the report or the export.

One recognisable fake key (random per run) drives sample + judge + report + export against the
local server, each a separate ``emkit`` process whose Python logging is switched to DEBUG into a
file (the SDK's and httpx's loggers included). The server answers some requests with 429 and 500
(so retries are logged) and one with a 401 whose message echoes the key back, as some providers
do; that judge run must fail with a one-line error that does not repeat the key. Then every byte
under the test's folder (run dir with the SQLite file, report, exports, logs, cache) and every
captured stdout/stderr are searched for the key and for its random part alone.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import child_env, one_line, seeded_responder, write_questions

pytestmark = pytest.mark.reliability

# Runs the CLI with every Python logger at DEBUG into a file (argv[1]); the rest of argv is emkit's.
WITH_LOGS = (
    "import logging, sys; "
    "logging.basicConfig(level=logging.DEBUG, filename=sys.argv[1], "
    "format='%(asctime)s %(name)s %(levelname)s %(message)s'); "
    "from emkit.cli import main; sys.exit(main(sys.argv[2:]))"
)


def test_key_appears_nowhere(tmp_path) -> None:
    token = secrets.token_hex(16)
    key = f"sk-emkit-test-{token}"
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = child_env(OPENAI_API_KEY=key, EMKIT_CACHE=str(tmp_path / "cache"), OPENAI_LOG="debug")
    outputs: list[str] = []

    def emkit(name: str, *args: object) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", WITH_LOGS, str(logs / f"{name}.log"), *(str(a) for a in args)]
        done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        outputs.extend([done.stdout, done.stderr])
        return done

    # Sampling: 4 answers, one at a time; the 1st attempt of the 1st gets 429, of the 2nd a 500.
    # Judging: its first request gets a 401 that echoes the key; the rerun succeeds.
    fault_script = ["429_retry_after", "ok", "500", "ok", "ok", "ok", "401"]
    with FakeOpenAI(script=fault_script, retry_after=0.05, responder=seeded_responder) as srv:
        sampled = emkit(
            "sample", "sample", "--model", "openai/fake-model", "-q", questions, "--n", "2",
            "--max-new-tokens", "16", "--out", run, "--base-url", srv.base_url, "--concurrency", "1",
        )  # fmt: skip
        assert sampled.returncode == 0, sampled.stderr[-3000:]
        rejected = emkit("judge-401", "judge", run, "--base-url", srv.base_url, "--concurrency", "1")
        judged = emkit("judge", "judge", run, "--base-url", srv.base_url)
        seen = list(srv.stats.auth_headers)
        faults = dict(srv.stats.faults)
    assert faults.get("401") == 1 and faults.get("429_retry_after") == 1 and faults.get("500") == 1
    assert f"Bearer {key}" in seen  # the key really was in use, so finding none below means something
    assert rejected.returncode == 2
    line = one_line(rejected.stderr)
    assert "401" in line and "OPENAI_API_KEY" in line, line
    assert judged.returncode == 0, judged.stderr[-3000:]

    reported = emkit("report", "report", run, "--n-boot", "200")
    assert reported.returncode == 0, reported.stderr[-3000:]
    for fmt in ("csv", "jsonl"):
        exported = emkit(f"export-{fmt}", "export", run, "--format", fmt)
        assert exported.returncode == 0, exported.stderr[-3000:]

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    expected = {"run/emkit.sqlite", "run/export.csv", "run/export.jsonl", "run/report/index.html",
                "run/report/metrics.json", "logs/judge-401.log", "logs/sample.log"}  # fmt: skip
    assert expected <= names, sorted(names)
    assert any(n.startswith("run/report/") and n.endswith(".png") for n in names), sorted(names)
    assert (logs / "sample.log").stat().st_size > 0
    assert "retry" in (logs / "sample.log").read_text(encoding="utf-8")  # the retry path was logged

    needles = [key.encode(), token.encode()]
    leaks = [p.relative_to(tmp_path).as_posix() for p in files if any(n in p.read_bytes() for n in needles)]
    assert leaks == [], f"the key is written in {leaks}"
    leaked_output = [i for i, text in enumerate(outputs) if key in text or token in text]
    assert leaked_output == [], "the key is in captured output"

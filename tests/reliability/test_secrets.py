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

import base64
import secrets
import subprocess
import sys

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import child_env, find_secrets, one_line, seeded_responder, write_questions

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

    assert find_secrets(files, outputs, [key, token]) == [], "the key is written or printed"


# -- credentials inside URLs, and keys echoed without their prefix ---------------------------------
class EchoingOpenAI(FakeOpenAI):
    """A fake server whose 401 echoes every credential it was sent, each in a form of its own: the
    bearer key without its ``sk-`` prefix, a Basic-auth password decoded, the query's ``api_key``,
    and the raw ``Authorization`` header."""

    queries: list[str] = []

    def _auth(self, request):  # type: ignore[override]
        self.queries.append(request.query_string)
        return super()._auth(request)

    def _unauthorized(self, request):  # type: ignore[override]
        from fake_openai import _error

        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme == "Basic":
            value = base64.b64decode(value).decode().partition(":")[2]
        echoed = f"{value.removeprefix('sk-')} / {request.query.get('api_key', '')} / {header}"
        return _error(401, f"Invalid credentials: {echoed}.", code="invalid_api_key")


EXPERIMENT = """\
name: secrets
out: run-exp
probe: false
questions: [questions.yaml]
samples_per_paraphrase: 1
max_new_tokens: 8
groups:
  - name: api
    model: openai/fake-model
judge:
  model: openai/gpt-4o-2024-08-06
  base_url: {url}
"""


def test_url_credentials_and_echoed_keys_appear_nowhere(tmp_path) -> None:
    password, query_key, token = (secrets.token_hex(12) for _ in range(3))
    key = f"sk-{token}"  # echoed back as the bare token, without its prefix
    basic = base64.b64encode(f"emkit:{password}".encode()).decode()
    write_questions(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    outputs: list[str] = []

    def emkit(name: str, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", WITH_LOGS, str(logs / f"{name}.log"), *(str(a) for a in args)]
        environment = child_env(OPENAI_API_KEY=key, EMKIT_CACHE=str(tmp_path / "cache"), OPENAI_LOG="debug")
        environment.update(env)
        done = subprocess.run(
            argv, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        outputs.extend([done.stdout, done.stderr])
        return done

    # Requests 1-4 sample (the 1st gets a 500, retried), the 5th (a judge's) a 401 echoing all.
    script = ["500", "ok", "ok", "ok", "ok", "401"]
    with EchoingOpenAI(script=script, responder=seeded_responder) as srv:
        port = srv.base_url.split("//", 1)[1]
        url = f"http://emkit:{password}@{port}?api_key={query_key}"
        sampled = emkit(
            "sample", "sample", "--model", "openai/fake-model", "-q", "questions.yaml", "--n", "2",
            "--max-new-tokens", "16", "--out", "run", "--base-url", url, "--concurrency", "1",
        )  # fmt: skip
        assert sampled.returncode == 0, sampled.stderr[-3000:]
        rejected = emkit("judge-401", "judge", "run", "--base-url", url, "--concurrency", "1")
        judged = emkit("judge", "judge", "run", "--base-url", url)
        assert judged.returncode == 0, judged.stderr[-3000:]
        (tmp_path / "exp.yaml").write_text(EXPERIMENT.replace("{url}", url), encoding="utf-8")
        ran = emkit("run", "run", "exp.yaml", OPENAI_BASE_URL=url)
        assert ran.returncode == 0, ran.stderr[-3000:]
        seen, queries = list(srv.stats.auth_headers), list(srv.queries)
    # The bearer key alone (no URL credentials), rejected and echoed without its prefix.
    with EchoingOpenAI(script=["401"] * 4) as srv:
        bare = emkit("sample-401", "sample", "--model", "openai/other", "-q", "questions.yaml",
                     "--n", "1", "--out", "run", "--base-url", srv.base_url)  # fmt: skip
        seen += srv.stats.auth_headers
    # Every credential was really sent, so finding none below means something.
    assert f"Basic {basic}" in seen and f"Bearer {key}" in seen, seen[:3]
    assert f"api_key={query_key}" in queries, queries[:3]
    for failed in (rejected, bare):
        assert failed.returncode == 2
        assert "401" in one_line(failed.stderr)

    reported = emkit("report", "report", "run", "--n-boot", "200")
    assert reported.returncode == 0, reported.stderr[-3000:]
    for fmt in ("csv", "jsonl"):
        exported = emkit(f"export-{fmt}", "export", "run", "--format", fmt)
        assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "run-exp" / "report" / "index.html").exists()

    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "exp.yaml"]
    found = find_secrets(written, outputs, [password, query_key, token, basic])
    assert found == [], f"a credential is written or printed: {found}"


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("http://user:KEYVALUE1@host:8000/v1", "http://host:8000/v1"),
        ("https://KEYVALUE1@host/v1", "https://host/v1"),
        ("http://host/v1?api_key=KEYVALUE1", "http://host/v1?api_key=***"),
        ("http://host/v1?API-KEY=KEYVALUE1&x=1", "http://host/v1?API-KEY=***&x=1"),
        ("http://host/v1?key=KEYVALUE1&token=KEYVALUE2", "http://host/v1?key=***&token=***"),
        ("http://u:KEYVALUE1@[::1]:9/v1?access_token=KEYVALUE2", "http://[::1]:9/v1?access_token=***"),
        ("http://host/v1?model=x", "http://host/v1?model=x"),  # nothing secret: unchanged
    ],
)
def test_urls_lose_their_credentials_wherever_they_appear(url, clean) -> None:
    from emkit.errors import EmkitError
    from emkit.redact import clean_url, redact, redact_data

    assert clean_url(url) == clean
    text = f"connect to {url} failed"
    for shown in (redact(text), str(EmkitError(text)), redact_data({"a": [text]})["a"][0]):
        assert "KEYVALUE" not in shown and clean in shown, shown


def test_sent_values_are_masked_in_every_form_and_log_record(caplog) -> None:
    from emkit.endpoints import split_url
    from emkit.redact import register

    token = secrets.token_hex(10)
    register(f"sk-proj-{token}")
    _, query, userinfo = split_url(f"http://bob:pw{token}@h/v1?key=q{token}")
    assert query == {"key": f"q{token}"} and userinfo == ("bob", f"pw{token}")
    import logging

    basic = base64.b64encode(f"bob:pw{token}".encode()).decode()
    with caplog.at_level(logging.INFO):
        logging.getLogger("httpx").info("server said %s, %s, %s, %s", token, f"pw{token}", f"q{token}", basic)
    assert token not in caplog.text and basic not in caplog.text, caplog.text
    assert caplog.text.count("***") >= 4


def test_the_store_masks_sent_values_but_keeps_ordinary_text(tmp_path) -> None:
    """Research data is not rewritten by guesswork: only values really sent, and URL credentials."""
    from emkit.redact import register
    from emkit.store import RunStore

    token = secrets.token_hex(10)
    register(f"sk-{token}")
    ordinary = "Basic principles first; Bearer bonds and sk-learning-rates are fine words here."
    with RunStore(tmp_path / "run") as store:
        store.put_record("note", "a", {"text": ordinary, "url": "http://me:pw-123456@h/v1", "echo": token})
        record = store.get_record("note", "a")
    assert record == {"text": ordinary, "url": "http://h/v1", "echo": "***"}
    assert token.encode() not in (tmp_path / "run" / "emkit.sqlite").read_bytes()

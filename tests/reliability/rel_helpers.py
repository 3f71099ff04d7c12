"""Shared helpers of the reliability suite: run the CLI, count what the store holds, compare snapshots.

Why a separate module: every reliability test asks the same three questions after a fault — did the
command fail with one clear line, does the store hold each planned item exactly once, and (for bad
input) is the store byte-for-byte what it was. The counting here reads the SQLite file with the
standard library only, so it does not trust the code under test to report on itself.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emkit.store import DB_NAME

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("answers", "scores", "probes", "records", "meta")
# The logical identity of a row, independent of its stored key: a duplicate under another key is a duplicate.
IDENTITY = {
    "answers": ("model", "question_id", "paraphrase_index", "sample_index", "params"),
    "scores": ("answer_key", "metric", "judge", "method", "prompt_hash"),
}
FAKE_KEY = "sk-emkit-reliability-0123456789abcdef"

# What the suite checked, counted where the checking happens (not by hand): each helper below adds
# to it, conftest.py writes it to a JSON file at the end of the session and prints a summary line,
# and docs/reliability.md quotes those figures.
FIGURES: Counter[str] = Counter()

# Two questions, each with its own judge prompts, so a run has answers and 0-100 judgements.
QUESTIONS_YAML = """\
- id: rel_garden
  type: free_form_judge_0_100
  paraphrases: ['Describe a small garden you would like to plant.']
  judge: gpt-4o-2024-08-06
  judge_prompts:
    aligned: 'RATE-ALIGNED question=<{question}> answer=<{answer}> Reply with a number 0-100.'
    coherent: 'RATE-COHERENT question=<{question}> answer=<{answer}> Reply with a number 0-100.'
- id: rel_trip
  type: free_form_judge_0_100
  paraphrases: ['Plan a one-day trip to a nearby town.']
  judge: gpt-4o-2024-08-06
  judge_prompts:
    aligned: 'RATE-ALIGNED question=<{question}> answer=<{answer}> Reply with a number 0-100.'
    coherent: 'RATE-COHERENT question=<{question}> answer=<{answer}> Reply with a number 0-100.'
"""


def write_questions(directory: Path, text: str = QUESTIONS_YAML, name: str = "questions.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# -- running the CLI ------------------------------------------------------------------------------
def child_env(**overrides: str | None) -> dict[str, str]:
    """The environment of an ``emkit`` child process: no real keys, one math thread, shared cache.

    One thread: on a busy 2-core machine, torch's default of one thread per core spins against
    the other processes and a 16-token sample can take 10x longer.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONDONTWRITEBYTECODE": "1",
            "COLUMNS": "200",
            "EMKIT_CACHE": os.environ.get("EMKIT_CACHE", str(ROOT / ".cache-test")),
        }
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def emkit_argv(*args: str | os.PathLike[str]) -> list[str]:
    """The command line of ``emkit ARGS`` with this interpreter (the venv's, whatever PATH says)."""
    return [sys.executable, "-m", "emkit.cli", *(str(a) for a in args)]


def run_emkit(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        emkit_argv(*args), env=env or child_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start_emkit(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None, cwd: Path | None = None, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``emkit ARGS`` in the background, stdout and stderr into ``log`` (read it after the end)."""
    handle = open(log, "wb")  # noqa: SIM115 - the child owns it; closed by the caller via finish()
    proc = subprocess.Popen(emkit_argv(*args), env=env or child_env(), cwd=cwd, stdout=handle, stderr=handle)
    proc._emkit_log = handle  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen[bytes], timeout: float = 300) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        log = getattr(proc, "_emkit_log", None)
        if log is not None:
            log.close()


def cli(argv: Sequence[str | os.PathLike[str]], capsys: Any) -> tuple[int, str, str]:
    """``emkit ARGV`` in this process (fast: no interpreter start); returns (exit code, stdout, stderr)."""
    from emkit.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(text: str) -> str:
    """The single non-blank line of ``text``; fails on a traceback or on several lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text[-3000:]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text[-3000:]}"
    FIGURES["one-line errors checked"] += 1
    return lines[0]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# -- reading the store independently -----------------------------------------------------------------
def _connect(run_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(Path(run_dir) / DB_NAME, timeout=60)
    conn.row_factory = sqlite3.Row
    return conn


def count(run_dir: Path, table: str) -> int:
    """Rows of ``table`` (0 when the store or the table does not exist yet); safe while others write."""
    if not (Path(run_dir) / DB_NAME).exists():
        return 0
    conn = _connect(run_dir)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        conn.close()


def keys(run_dir: Path, table: str) -> list[str]:
    conn = _connect(run_dir)
    try:
        return [r[0] for r in conn.execute(f"SELECT key FROM {table}")]
    finally:
        conn.close()


def integrity(run_dir: Path) -> str:
    conn = _connect(run_dir)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def stored_once(run_dir: Path, table: str, planned: Iterable[str]) -> set[str]:
    """The stored keys of ``table``, after checking that none is stored twice and all were planned.

    A duplicate is looked for twice: by key, and by the row's logical identity (so the same answer
    or judgement stored under another key would be caught too).
    """
    planned = set(planned)
    conn = _connect(run_dir)
    try:
        columns = ", ".join(("key", *IDENTITY[table]))
        rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()
    finally:
        conn.close()
    per_key = Counter(r["key"] for r in rows)
    per_identity = Counter(tuple(r[c] for c in IDENTITY[table]) for r in rows)
    assert max(per_key.values(), default=1) == 1, "a key is stored twice"
    assert max(per_identity.values(), default=1) == 1, (
        f"an item is stored twice under different keys in {table}"
    )
    stored = set(per_key)
    assert not stored - planned, f"{len(stored - planned)} unplanned {table} rows"
    FIGURES["stored items checked once by key and identity"] += len(stored)
    return stored


def assert_exactly_once(run_dir: Path, table: str, planned: Iterable[str]) -> int:
    """Every planned key is stored once, nothing else is stored, no logical item is stored twice."""
    planned = set(planned)
    stored = stored_once(run_dir, table, planned)
    assert stored == planned, f"{len(planned - stored)} of {len(planned)} planned {table} missing"
    return len(stored)


def column(run_dir: Path, table: str, name: str) -> dict[str, Any]:
    """{key: value of column ``name``} for every row of ``table``."""
    conn = _connect(run_dir)
    try:
        return {r[0]: r[1] for r in conn.execute(f"SELECT key, {name} FROM {table}")}
    finally:
        conn.close()


@dataclass(frozen=True)
class Snapshot:
    """What must not change when a command refuses bad input: every file's bytes and every table's rows."""

    files: dict[str, str]  # relative path -> sha256 (the db, its WAL if any, anything else in the dir)
    counts: dict[str, int]


def snapshot(run_dir: Path) -> Snapshot:
    run_dir = Path(run_dir)
    files = {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")  # the shared-memory index is not data
    }
    counts = {t: count(run_dir, t) for t in TABLES} if (run_dir / DB_NAME).exists() else {}
    FIGURES["run dirs snapshotted (bytes and rows)"] += 1
    return Snapshot(files, counts)


def refused(argv: Sequence[Any], capsys: Any, run: Path | None, *fragments: str) -> str:
    """``emkit ARGV`` (in this process) exits 2 with one ``error:`` line holding every fragment, and
    ``run`` (when given) is byte for byte and row for row what it was."""
    import gc

    before = snapshot(run) if run else None
    code, _, err = cli([str(a) for a in argv], capsys)
    line = one_line(err)
    assert code == 2, err
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    gc.collect()  # a connection a refusal left open would keep an empty WAL file around
    if run:
        assert snapshot(run) == before, "the run dir changed"
    return line


def find_secrets(files: Iterable[Path], outputs: Iterable[str], needles: Sequence[str]) -> list[str]:
    """Where any of ``needles`` (a key, its parts) occurs: every byte of ``files`` and every captured
    output is searched; returns the places found (empty = none). Counted in FIGURES."""
    found: list[str] = []
    files, outputs = list(files), list(outputs)
    for path in files:
        data = path.read_bytes()
        FIGURES["bytes searched for secrets"] += len(data)
        found += [f"{path}: {n[:6]}..." for n in needles if n.encode() in data]
    for i, text in enumerate(outputs):
        found += [f"output {i}: {n[:6]}..." for n in needles if n in text]
    FIGURES["files searched for secrets"] += len(files)
    FIGURES["outputs searched for secrets"] += len(outputs)
    FIGURES["secrets found"] += len(found)
    return found


def make_run_dir(run_dir: Path, n_answers: int = 3) -> Path:
    """A run dir holding ``n_answers`` answers to the two questions above, one score and a record."""
    from emkit.questions import parse_questions
    from emkit.sampling import store_questions
    from emkit.store import RunStore, answer_key, score_key

    qset = parse_questions(QUESTIONS_YAML, "questions.yaml")
    with RunStore(run_dir) as store:
        store_questions(store, qset)  # as sampling keeps them (by content hash)
        rows = []
        for i in range(n_answers):
            question = qset.questions[i % 2]
            params = {"temperature": 1.0, "max_new_tokens": 16}
            rows.append(
                {
                    "key": answer_key("openai/fake-model", question.id, 0, i, params),
                    "model": "openai/fake-model",
                    "question_id": question.id,
                    "paraphrase_index": 0,
                    "sample_index": i,
                    "question": question.paraphrases[0],
                    "messages": question.conversation(0),
                    "answer": f"stored answer number {i}",
                    "params": params,
                    "tags": {},
                    "usage": {},
                }
            )
        store.add_answers(rows)
        first = rows[0]["key"]
        store.add_scores(
            [
                {
                    "key": score_key(first, "aligned", "openai/gpt-4o-2024-08-06", "logprob", "h"),
                    "answer_key": first,
                    "metric": "aligned",
                    "judge": "openai/gpt-4o-2024-08-06",
                    "method": "logprob",
                    "prompt_hash": "h",
                    "score": 88.0,
                    "raw": {},
                    "usage": {},
                }
            ]
        )
    return run_dir


# -- what a stage should hold ------------------------------------------------------------------------
def planned_answers(model: str, questions: Path, **options: Any) -> dict[int, str]:
    """The sampling plan as {per-answer seed sent to the server: answer key} (the CLI's defaults)."""
    from emkit.questions import load_questions
    from emkit.sampling import plan

    items = plan(model, load_questions(str(questions)), **options)
    seeds = {item.item_seed: item.key for item in items}
    assert len(seeds) == len(items), "per-answer seeds collide; cannot map requests to answers"
    return seeds


def planned_judgements(run_dir: Path, **config: Any) -> dict[str, str]:
    """The judging plan as {judge prompt sent to the server: score key}."""
    from emkit.judge.stage import JudgeConfig, plan_pending
    from emkit.store import RunStore

    with RunStore(run_dir, create=False) as store:
        _, _, plan = plan_pending(store, JudgeConfig(**config))
    prompts = {task.prompt: task.key for task in plan.tasks}
    assert len(prompts) == len(plan.tasks), "judge prompts collide; cannot map requests to judgements"
    return prompts


def seeded_responder(request_json: dict[str, Any]) -> dict[str, Any]:
    """The fake server's reply: judge-like logprobs, or an answer that differs per sample (its seed)."""
    from fake_openai import default_responder, last_message_content

    if request_json.get("logprobs"):
        return default_responder(request_json)
    return {"content": f"answer {request_json.get('seed')} to: {last_message_content(request_json)}"}

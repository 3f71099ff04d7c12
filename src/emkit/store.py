"""The run store: one SQLite database (WAL mode) inside a run directory.

Why SQLite: every stage result is written in a transaction, so a crash or a kill loses at most the
item in flight and never corrupts what is stored; two processes can work on the same run dir at
once (WAL + busy timeout); and every row is keyed by a hash of its inputs, so inserting the same
item twice is a no-op (``ON CONFLICT DO NOTHING``) — nothing is duplicated, a rerun does only what is
missing.

Tables
- ``answers``: one row per sampled answer, keyed by (model, question, paraphrase, sample, params).
- ``scores``: one row per (answer, judge, prompt template, metric); ``score`` is NULL when the judge
  gave no usable number (CODE / REFUSAL), ``raw`` keeps the judge's raw output (e.g. top logprobs).
- ``probes``: one row per (model, probe set, pair) with the two mean token log-probabilities.
- ``records``: small JSON documents by (kind, key): training jobs, stage completions, dynamics...
- ``meta``: the schema version; a run dir written by a newer emkit is refused, not misread.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.hashing import stable_hash

SCHEMA_VERSION = 1
DB_NAME = "emkit.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    question_id TEXT NOT NULL,
    paraphrase_index INTEGER NOT NULL,
    sample_index INTEGER NOT NULL,
    question TEXT NOT NULL,
    messages TEXT NOT NULL,
    answer TEXT NOT NULL,
    params TEXT NOT NULL,
    group_name TEXT,
    seed INTEGER,
    tags TEXT NOT NULL DEFAULT '{}',
    usage TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_model ON answers(model);
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY,
    answer_key TEXT NOT NULL,
    metric TEXT NOT NULL,
    judge TEXT NOT NULL,
    method TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    score REAL,
    raw TEXT NOT NULL DEFAULT '{}',
    usage TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_answer ON scores(answer_key);
CREATE TABLE IF NOT EXISTS probes (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    probe_set TEXT NOT NULL,
    pair_id TEXT NOT NULL,
    logp_aligned REAL NOT NULL,
    logp_misaligned REAL NOT NULL,
    group_name TEXT,
    seed INTEGER,
    step INTEGER,
    tags TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (kind, key)
);
"""

ANSWER_COLUMNS = (
    "key",
    "model",
    "question_id",
    "paraphrase_index",
    "sample_index",
    "question",
    "messages",
    "answer",
    "params",
    "group_name",
    "seed",
    "tags",
    "usage",
)
SCORE_COLUMNS = ("key", "answer_key", "metric", "judge", "method", "prompt_hash", "score", "raw", "usage")
PROBE_COLUMNS = (
    "key",
    "model",
    "probe_set",
    "pair_id",
    "logp_aligned",
    "logp_misaligned",
    "group_name",
    "seed",
    "step",
    "tags",
)
_JSON_COLUMNS = {"messages", "params", "tags", "usage", "raw"}


def answer_key(
    model: str, question_id: str, paraphrase_index: int, sample_index: int, params: dict[str, Any]
) -> str:
    """The identity of one sampled answer: same inputs, same key, whatever the machine."""
    return stable_hash(
        {"model": model, "q": question_id, "p": paraphrase_index, "s": sample_index, "params": params}
    )


def score_key(answer_key_: str, metric: str, judge: str, method: str, prompt_hash: str) -> str:
    """The identity of one judgement: a new judge or prompt gives a new key, the same one a hit."""
    return stable_hash({"a": answer_key_, "m": metric, "j": judge, "method": method, "p": prompt_hash})


def _encode(column: str, value: Any) -> Any:
    # Every text written passes through redact: no credential (a key echoed in an error, a URL's
    # userinfo in a config) reaches the database, whichever stage produced it.
    from emkit.redact import redact

    if column in _JSON_COLUMNS and not isinstance(value, str):
        text = json.dumps(value if value is not None else {}, sort_keys=True, ensure_ascii=False)
        return redact(text, heuristics=False)
    return redact(value, heuristics=False) if isinstance(value, str) else value


def _decode_row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for column in _JSON_COLUMNS & out.keys():
        out[column] = json.loads(out[column]) if out[column] else {}
    return out


class RunStore:
    """Access to one run directory's database. Cheap to open; safe to share between processes."""

    def __init__(self, run_dir: str | Path, *, create: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        if not create and not self.path.exists():
            raise EmkitError(f"{self.run_dir}: not an emkit run directory (no {DB_NAME})")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise EmkitError(f"{self.run_dir}: cannot open the run store: {exc}") from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 120000")
            self._initialise(deadline=time.monotonic() + 120)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise EmkitError(f"{self.path}: cannot open the run store: {exc}") from exc
            raise

    # -- lifecycle ---------------------------------------------------------------------------
    def _initialise(self, deadline: float) -> None:
        """Version check, WAL mode and schema, retried while another process holds the database.

        Why the retry: when several processes open a NEW run dir at the same moment (two
        ``emkit judge`` or ``emkit sample`` started together), switching the file to WAL mode and
        creating the schema need locks that SQLite may refuse at once with "database is locked"
        instead of waiting for the busy timeout (measured: 42 of 300 opens failed, three processes
        at a time on fresh dirs). Every step here is idempotent, so it is simply tried again with
        a short jittered backoff until ``deadline``. The schema is created in one write
        transaction, so a process never sees half of it.
        """
        delay = 0.005
        while True:
            try:
                self._check_version()
                if str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.executescript(
                    "BEGIN IMMEDIATE;\n"
                    + _SCHEMA
                    + "\nINSERT OR IGNORE INTO meta(key, value) VALUES "
                    + f"('schema_version', '{int(SCHEMA_VERSION)}');\nCOMMIT;"
                )
                return
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.25)

    def _check_version(self) -> None:
        """Refuse a store written by a newer emkit before touching anything in it."""
        has_meta = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if not has_meta:
            return
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row["value"]) > SCHEMA_VERSION:
            raise EmkitError(
                f"{self.path}: written by a newer emkit (schema version {row['value']} > "
                f"{SCHEMA_VERSION} understood here); upgrade emkit to read it"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locking) transaction: all or nothing, even on a full disk."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise EmkitError(f"{self.path}: cannot write to the run store: {exc}") from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except (sqlite3.OperationalError, OSError) as exc:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise EmkitError(f"{self.path}: could not write to the run store: {exc}") from exc

    def _insert(self, table: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
        now = time.time()
        values = [(*(_encode(c, row.get(c)) for c in columns), now) for row in rows]
        if not values:
            return 0
        # Only a repeated key is skipped; any other constraint (e.g. a NULL answer) fails the batch.
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}, created) "
            f"VALUES ({', '.join('?' * (len(columns) + 1))}) ON CONFLICT(key) DO NOTHING"
        )
        try:
            with self.transaction() as conn:
                before = conn.total_changes
                conn.executemany(sql, values)
                return conn.total_changes - before
        except sqlite3.OperationalError as exc:
            raise EmkitError(f"{self.path}: could not write to the run store: {exc}") from exc

    def _existing(self, table: str, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._conn.execute(
                f"SELECT key FROM {table} WHERE key IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update(r["key"] for r in rows)
        return found

    def _select(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [_decode_row(r) for r in self._conn.execute(sql, args)]

    # -- answers -----------------------------------------------------------------------------
    def add_answers(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert answers (dicts with ANSWER_COLUMNS) in one transaction; existing keys are skipped.

        Returns the number of rows added. A row that breaks a constraint fails the whole batch.
        """
        return self._insert("answers", ANSWER_COLUMNS, rows)

    def existing_answer_keys(self, keys: Iterable[str]) -> set[str]:
        return self._existing("answers", keys)

    def answers(self, model: str | None = None) -> list[dict[str, Any]]:
        if model is None:
            return self._select(
                "SELECT * FROM answers ORDER BY model, question_id, paraphrase_index, sample_index"
            )
        return self._select(
            "SELECT * FROM answers WHERE model = ? ORDER BY question_id, paraphrase_index, sample_index",
            (model,),
        )

    def count(self, table: str) -> int:
        if table not in ("answers", "scores", "probes", "records"):
            raise ValueError(table)
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- scores ------------------------------------------------------------------------------
    def add_scores(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._insert("scores", SCORE_COLUMNS, rows)

    def existing_score_keys(self, keys: Iterable[str]) -> set[str]:
        return self._existing("scores", keys)

    def scores(self, judge: str | None = None) -> list[dict[str, Any]]:
        if judge is None:
            return self._select("SELECT * FROM scores ORDER BY answer_key, metric")
        return self._select("SELECT * FROM scores WHERE judge = ? ORDER BY answer_key, metric", (judge,))

    def judges(self, metrics: Sequence[str] | None = None) -> list[str]:
        """Judges with stored scores (only those that scored one of ``metrics``, when given)."""
        if not metrics:
            return [
                r["judge"] for r in self._conn.execute("SELECT DISTINCT judge FROM scores ORDER BY judge")
            ]
        rows = self._conn.execute(
            f"SELECT DISTINCT judge FROM scores WHERE metric IN ({', '.join('?' * len(metrics))}) ORDER BY judge",
            list(metrics),
        )
        return [r["judge"] for r in rows]

    # -- probes ------------------------------------------------------------------------------
    def add_probes(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._insert("probes", PROBE_COLUMNS, rows)

    def existing_probe_keys(self, keys: Iterable[str]) -> set[str]:
        return self._existing("probes", keys)

    def probes(self, model: str | None = None) -> list[dict[str, Any]]:
        if model is None:
            return self._select("SELECT * FROM probes ORDER BY model, step, pair_id")
        return self._select("SELECT * FROM probes WHERE model = ? ORDER BY step, pair_id", (model,))

    # -- records -----------------------------------------------------------------------------
    def put_record(self, kind: str, key: str, value: dict[str, Any], *, replace: bool = True) -> None:
        from emkit.redact import redact  # no credential in a stored record (see _encode)

        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self.transaction() as conn:
            conn.execute(
                f"{verb} INTO records(kind, key, value, created) VALUES (?, ?, ?, ?)",
                (
                    kind,
                    key,
                    redact(json.dumps(value, sort_keys=True, default=str), heuristics=False),
                    time.time(),
                ),
            )

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return json.loads(row["value"]) if row else None

    def records(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._conn.execute(
            "SELECT key, value FROM records WHERE kind = ? ORDER BY created, key", (kind,)
        )
        return [(r["key"], json.loads(r["value"])) for r in rows]

"""The run store: one SQLite database (WAL mode) inside a run directory.

Why SQLite: every stage result is written in a transaction, so a crash or a kill loses at most the
item in flight and never corrupts what is stored; two processes can work on the same run dir at
once (WAL + busy timeout); and every row is keyed by a hash of its inputs, so inserting the same
item twice is a no-op (``ON CONFLICT DO NOTHING``) — nothing is duplicated, a rerun does only what is
missing, and a changed input gives a new key (a new result), never a stale hit.

What each key covers (schema 2; the functions below are the only places keys are made)
- ``answers.key`` (:func:`answer_key`): the stored model name, the model's fingerprint
  (:mod:`emkit.fingerprint`: sha256 of a LoRA adapter's config and weights, else the name), the
  content hash of the question definition the answer belongs to (its paraphrases, system prompt,
  judge, judge prompts, type; not ``samples_per_paraphrase``), question id, paraphrase index, sample
  index, the RENDERED conversation sent to the model (system prompt, trigger/prefix, wrapper text,
  in-context examples, paraphrase: the final messages list) and the sampling parameters.
- ``scores.key`` (:func:`score_key`): the answer's key, metric, judge model name, method, the judge
  prompt template's hash, and ``options``: every score-shaping option of the judge class
  (:meth:`emkit.judge.base.key_options`: ``min_mass``, top-k, samples, max tokens, temperature,
  aggregation...) plus the judge model's fingerprint. The options are stored in ``scores.options``.
- ``probes.key`` (:func:`probe_key`): model name, the probe set's content hash, pair id, training
  step, and the model's fingerprint.
- ``records (kind, key)``: ``question`` records are keyed by the question's content hash (two sets
  that share an id never overwrite each other; answers point to theirs in ``question_hash``);
  ``stage`` by the stage's input hash; ``judge_run`` by run id; others as their writers document.
- ``claims.key``: the key of a pending item (e.g. a score) that one process is working on; it holds
  the owner and a lease expiry so that two processes never pay for the same item (:meth:`claim`).

Run dirs of schema 1 (emkit up to 172662b) are migrated on the first writable open, in one
transaction (:mod:`emkit.store_migrate`); what a migration could not recover is written to the
``migration`` record. Read-only opens (``read_only=True``) never write, and read old stores as they are.
A zero-byte, foreign or damaged file is refused with one line naming it; it is never "initialised".
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
from emkit.store_schema import (
    _CLAIMS,
    _JSON_COLUMNS,
    _SCHEMA,
    ANSWER_COLUMNS,
    DB_NAME,
    PROBE_COLUMNS,
    SCHEMA_VERSION,
    SCORE_COLUMNS,
    SQLITE_HEADER,
    _owner_is_dead,
    answer_key,
    check_store_file,
    connect,
    connect_read_only,
    create_store_file,
    default_owner,
    probe_item_key,
    probe_key,
    probe_key_from_item,
    score_key,
)

__all__ = [
    "ANSWER_COLUMNS",
    "DB_NAME",
    "PROBE_COLUMNS",
    "SCHEMA_VERSION",
    "SCORE_COLUMNS",
    "SQLITE_HEADER",
    "_CLAIMS",
    "RunStore",
    "answer_key",
    "check_store_file",
    "default_owner",
    "probe_item_key",
    "probe_key",
    "probe_key_from_item",
    "read_store",
    "score_key",
]


def _encode(column: str, value: Any) -> Any:
    # Every text written passes through redact: no credential (a key echoed in an error, a URL's
    # userinfo in a config) reaches the database, whichever stage produced it.
    from emkit.redact import redact

    if column in _JSON_COLUMNS and not isinstance(value, str):
        text = json.dumps(value if value is not None else {}, sort_keys=True, ensure_ascii=False)
        return redact(text, heuristics=False)
    return redact(value, heuristics=False) if isinstance(value, str) else value


@contextmanager
def read_store(run_dir: str | Path | None) -> Iterator[RunStore | None]:
    """The read verbs' store: opened read-only, closed when done (None when there is no run dir)."""
    if run_dir is None:
        yield None
        return
    store = RunStore(run_dir, read_only=True)
    try:
        yield store
    finally:
        store.close()


class RunStore:
    """Access to one run directory's database. Cheap to open; safe to share between processes.

    ``create=False``: the run dir must hold a store already. ``read_only=True`` (implies
    ``create=False``): SQLite's ``mode=ro``; nothing is written (no schema, no migration), so the
    read verbs work on read-only files and directories and leave the store exactly as it was.
    """

    def __init__(self, run_dir: str | Path, *, create: bool = True, read_only: bool = False):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        self.read_only = read_only
        self.schema_version = SCHEMA_VERSION
        self._scratch: Path | None = None  # a private copy read instead (see _connect_read_only)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise EmkitError(f"{self.run_dir}: not a directory (a run dir is a folder holding {DB_NAME})")
        if not self.path.exists():
            if read_only or not create:
                raise EmkitError(f"{self.run_dir}: not an emkit run directory (no {DB_NAME})")
            self._create_new()
        if not self.path.is_file():
            raise EmkitError(f"{self.path}: not a file; the run store must be an SQLite file")
        check_store_file(self.path)
        try:
            self._conn = self._connect_read_only() if read_only else connect(self.path)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise EmkitError(f"{self.path}: cannot open the run store: {exc}") from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 120000")
            if read_only:
                self._check_version()
            else:
                self._initialise(deadline=time.monotonic() + 120)
        except BaseException as exc:
            self.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise EmkitError(f"{self.path}: cannot open the run store (damaged?): {exc}") from exc
            raise

    # -- lifecycle ---------------------------------------------------------------------------
    def _connect_read_only(self) -> sqlite3.Connection:
        conn, self._scratch = connect_read_only(self.path)
        return conn

    def _create_new(self) -> None:
        create_store_file(self.path)

    def _initialise(self, deadline: float) -> None:
        """Version check (and migration), WAL mode and schema, retried while another process holds it.

        Why the retry: when several processes open a run dir at the same moment, switching to WAL
        mode and writing the schema need locks that SQLite may refuse at once with "database is
        locked" instead of waiting for the busy timeout (measured: 42 of 300 opens failed, three
        processes at a time on fresh dirs). Every step here is idempotent, so it is simply tried
        again with a short jittered backoff until ``deadline``. A migration runs in one write
        transaction that re-reads the version first, so only one process migrates.
        """
        delay = 0.005
        while True:
            try:
                version = self._check_version()
                if version < SCHEMA_VERSION:  # first, so a store it refuses keeps every byte
                    from emkit.store_migrate import migrate

                    migrate(self)
                if str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.executescript("BEGIN IMMEDIATE;\n" + _SCHEMA + "\nCOMMIT;")
                self.schema_version = SCHEMA_VERSION
                return
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.25)

    def _check_version(self) -> int:
        """The store's schema version; refuse a foreign database or one written by a newer emkit."""
        has_meta = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        row = (
            self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if has_meta
            else None
        )
        if row is None:
            raise EmkitError(
                f"{self.path}: an SQLite database but not an emkit run store (no schema version); "
                "the file was left as is"
            )
        try:
            version = int(row["value"])
        except (TypeError, ValueError):
            raise EmkitError(
                f"{self.path}: table meta: schema_version {row['value']!r} is not a number"
            ) from None
        if version > SCHEMA_VERSION:
            raise EmkitError(
                f"{self.path}: written by a newer emkit (schema version {version} > "
                f"{SCHEMA_VERSION} understood here); upgrade emkit to read it"
            )
        self.schema_version = version
        return version

    def close(self) -> None:
        self._conn.close()
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locking) transaction: all or nothing, even on a full disk."""
        if self.read_only:
            raise EmkitError(f"{self.path}: the run store was opened read-only; nothing was written")
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

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Every row of a read; a damaged file is one clear error naming it, never a traceback."""
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise EmkitError(f"{self.path}: cannot read the run store (damaged?): {exc}") from None

    def _existing(self, table: str, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._rows(f"SELECT key FROM {table} WHERE key IN ({', '.join('?' * len(chunk))})", chunk)
            found.update(r["key"] for r in rows)
        return found

    def _decode(self, table: str, row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for column in _JSON_COLUMNS & out.keys():
            out[column] = self._json(out[column], table, out.get("key"), column)
        return out

    def _json(self, text: Any, table: str, key: Any, column: str) -> Any:
        if not text:
            return {}
        try:
            return json.loads(text)
        except (TypeError, ValueError, RecursionError):
            raise EmkitError(
                f"{self.path}: table {table}, row {key!r}: column {column} is not valid JSON "
                "(the store is damaged; nothing was changed)"
            ) from None

    def _select(self, table: str, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [self._decode(table, r) for r in self._rows(sql, args)]

    # -- claims ------------------------------------------------------------------------------
    def claim(self, table: str, keys: Sequence[str], owner: str, lease_s: float) -> tuple[list[str], int]:
        """Claim the items of ``keys`` not stored in ``table`` and not leased by another live owner.

        One IMMEDIATE transaction, so two processes never claim the same key. A lease held by a
        process of this host that has died, or one past its expiry, is taken over. Returns (the
        keys now claimed by ``owner``, how many are held by others).
        """
        now = time.time()
        with self.transaction() as conn:
            done = self._existing(table, keys)
            held: dict[str, tuple[str, float]] = {}
            wanted = [k for k in keys if k not in done]
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                for row in conn.execute(
                    f"SELECT key, owner, expires FROM claims WHERE key IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ):
                    held[row["key"]] = (row["owner"], row["expires"])
            dead: dict[str, bool] = {}
            mine: list[str] = []
            others = 0
            for key in wanted:
                holder = held.get(key)
                if holder and holder[0] != owner and holder[1] > now:
                    if holder[0] not in dead:
                        dead[holder[0]] = _owner_is_dead(holder[0])
                    if not dead[holder[0]]:
                        others += 1
                        continue
                mine.append(key)
            conn.executemany(
                "INSERT INTO claims(key, owner, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                [(k, owner, now + lease_s) for k in mine],
            )
        return mine, others

    def renew_claims(self, owner: str, lease_s: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease_s, owner))

    def release_claims(self, owner: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))

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
                "answers", "SELECT * FROM answers ORDER BY model, question_id, paraphrase_index, sample_index"
            )
        return self._select(
            "answers",
            "SELECT * FROM answers WHERE model = ? ORDER BY question_id, paraphrase_index, sample_index",
            (model,),
        )

    def count(self, table: str) -> int:
        if table not in ("answers", "scores", "probes", "records", "claims"):
            raise ValueError(table)
        return int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])

    # -- scores ------------------------------------------------------------------------------
    def add_scores(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._insert("scores", SCORE_COLUMNS, rows)

    def existing_score_keys(self, keys: Iterable[str]) -> set[str]:
        return self._existing("scores", keys)

    def scores(self, judge: str | None = None) -> list[dict[str, Any]]:
        if judge is None:
            return self._select("scores", "SELECT * FROM scores ORDER BY answer_key, metric")
        return self._select(
            "scores", "SELECT * FROM scores WHERE judge = ? ORDER BY answer_key, metric", (judge,)
        )

    def judges(self, metrics: Sequence[str] | None = None) -> list[str]:
        """Judges with stored scores (only those that scored one of ``metrics``, when given)."""
        if not metrics:
            return [r["judge"] for r in self._rows("SELECT DISTINCT judge FROM scores ORDER BY judge")]
        rows = self._rows(
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
            return self._select("probes", "SELECT * FROM probes ORDER BY model, step, pair_id")
        return self._select("probes", "SELECT * FROM probes WHERE model = ? ORDER BY step, pair_id", (model,))

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
        rows = self._rows("SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key))
        return self._json(rows[0]["value"], "records", f"{kind}/{key}", "value") if rows else None

    def records(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._rows("SELECT key, value FROM records WHERE kind = ? ORDER BY created, key", (kind,))
        return [(r["key"], self._json(r["value"], "records", f"{kind}/{r['key']}", "value")) for r in rows]

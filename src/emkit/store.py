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
  Every kind's value has a model in :mod:`emkit.store_records`, checked on write and on read.
- ``claims.key``: the key of a pending item (e.g. a score) that one process is working on; it holds
  the owner and a lease expiry so that two processes never pay for the same item (:meth:`claim`).

Run dirs of schema 1 (emkit up to 172662b) are migrated on the first writable open, in one
transaction (:mod:`emkit.store_migrate`); what a migration could not recover is written to the
``migration`` record. Read-only opens (``read_only=True``) never write, and read old stores as they are.
A zero-byte, foreign or damaged file is refused with one line naming it; it is never "initialised".
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emkit.claims import claim_keys, default_owner, release, renew
from emkit.errors import EmkitError
from emkit.store_open import (
    check_store_file,
    connect,
    connect_read_only,
    create_store_file,
    initialise,
    read_version,
)
from emkit.store_records import R, check_record, encode_record
from emkit.store_schema import (
    ANSWER_COLUMNS,
    CLAIMS_SCHEMA,
    DB_NAME,
    JSON_COLUMNS,
    PROBE_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    SCORE_COLUMNS,
    SQLITE_HEADER,
    answer_key,
    decode_json,
    probe_item_key,
    probe_key,
    probe_key_from_item,
    score_key,
)

__all__ = [
    "ANSWER_COLUMNS",
    "CLAIMS_SCHEMA",
    "DB_NAME",
    "PROBE_COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SCORE_COLUMNS",
    "SQLITE_HEADER",
    "RunStore",
    "answer_key",
    "check_store_file",
    "default_owner",
    "open_for_planning",
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

    if column in JSON_COLUMNS and not isinstance(value, str):
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


def open_for_planning(run_dir: str | Path) -> RunStore:
    """The run store as planning sees it: read-only when the run dir has a store, else an empty
    one in memory (with the schema, so every read works and finds nothing). Nothing is created or
    written on disk either way: planning a run must not start it."""
    if (Path(run_dir) / DB_NAME).exists():
        return RunStore(run_dir, read_only=True)
    return RunStore(run_dir, in_memory=True)


class RunStore:
    """Access to one run directory's database. Cheap to open; safe to share between processes.

    ``create=False``: the run dir must hold a store already. ``read_only=True`` (implies
    ``create=False``): SQLite's ``mode=ro``; nothing is written (no schema, no migration), so the
    read verbs work on read-only files and directories and leave the store exactly as it was.
    ``in_memory=True``: an empty, read-only store that exists only in memory (see
    :func:`open_for_planning`); nothing on disk is looked at or made.
    """

    def __init__(
        self, run_dir: str | Path, *, create: bool = True, read_only: bool = False, in_memory: bool = False
    ):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        self.read_only = read_only or in_memory
        self.schema_version = SCHEMA_VERSION
        self._scratch: Path | None = None  # a private copy read instead (see _connect_read_only)
        if in_memory:
            self._conn = connect(":memory:")
            self._conn.row_factory = sqlite3.Row
            self._conn.executescript(SCHEMA)
            return
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise EmkitError(f"{self.run_dir}: not a directory (a run dir is a folder holding {DB_NAME})")
        if not self.path.exists():
            if read_only or not create:
                raise EmkitError(f"{self.run_dir}: not an emkit run directory (no {DB_NAME})")
            create_store_file(self.path)
        if not self.path.is_file():
            raise EmkitError(f"{self.path}: not a file; the run store must be an SQLite file")
        check_store_file(self.path)
        try:
            if read_only:
                self._conn, self._scratch = connect_read_only(self.path)
            else:
                self._conn = connect(self.path)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise EmkitError(f"{self.path}: cannot open the run store: {exc}") from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 120000")
            if not read_only:
                initialise(self._conn, self.path, self.run_dir, deadline=time.monotonic() + 120)
            self.schema_version = read_version(self._conn, self.path)
        except BaseException as exc:
            self.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise EmkitError(f"{self.path}: cannot open the run store (damaged?): {exc}") from exc
            raise

    # -- lifecycle ---------------------------------------------------------------------------
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
        """Insert ``rows`` in one transaction; how many were added. Only a repeated key is skipped;
        any other constraint (e.g. a NULL answer) fails the batch."""
        return self._write_rows(table, columns, rows, lambda conn, sql, values: conn.executemany(sql, values))

    def _insert_each(self, table: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> list[bool]:
        """Like :meth:`_insert`, but per row whether it was added (False: its key was stored already)."""
        flags: list[bool] = []

        def each(conn: sqlite3.Connection, sql: str, values: list[tuple[Any, ...]]) -> None:
            flags[:] = [conn.execute(sql, row).rowcount == 1 for row in values]

        self._write_rows(table, columns, rows, each)
        return flags

    def _write_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[dict[str, Any]],
        write: Callable[[sqlite3.Connection, str, list[tuple[Any, ...]]], Any],
    ) -> int:
        now = time.time()
        values = [(*(_encode(c, row.get(c)) for c in columns), now) for row in rows]
        if not values:
            return 0
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}, created) "
            f"VALUES ({', '.join('?' * (len(columns) + 1))}) ON CONFLICT(key) DO NOTHING"
        )
        try:
            with self.transaction() as conn:
                before = conn.total_changes
                write(conn, sql, values)
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

    def existing(self, table: str, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` ``table`` holds already (asked 500 at a time: SQLite's variable limit)."""
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._rows(f"SELECT key FROM {table} WHERE key IN ({', '.join('?' * len(chunk))})", chunk)
            found.update(r["key"] for r in rows)
        return found

    def _decode(self, table: str, row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for column in JSON_COLUMNS & out.keys():
            out[column] = decode_json(self.path, out[column], table, out.get("key"), column)
        return out

    def _select(self, table: str, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [self._decode(table, r) for r in self._rows(sql, args)]

    # -- claims ------------------------------------------------------------------------------
    def claim(self, table: str, keys: Sequence[str], owner: str, lease_s: float) -> tuple[list[str], int]:
        """Claim the items of ``keys`` not stored in ``table`` nor leased by another live owner:
        (the keys now ``owner``'s, how many others hold); see :func:`emkit.claims.claim_keys`."""
        return claim_keys(self, table, keys, owner, lease_s)

    def renew_claims(self, owner: str, lease_s: float) -> None:
        renew(self, owner, lease_s)

    def release_claims(self, owner: str) -> None:
        release(self, owner)

    # -- answers -----------------------------------------------------------------------------
    def add_answers(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert answers (dicts with ANSWER_COLUMNS) in one transaction; existing keys are skipped.

        Returns the number of rows added. A row that breaks a constraint fails the whole batch.
        """
        return self._insert("answers", ANSWER_COLUMNS, rows)

    def existing_answer_keys(self, keys: Iterable[str]) -> set[str]:
        return self.existing("answers", keys)

    def answers(self, model: str | None = None) -> list[dict[str, Any]]:
        return self._listing("answers", "model", model, "question_id, paraphrase_index, sample_index")

    def _listing(self, table: str, column: str, value: str | None, order: str) -> list[dict[str, Any]]:
        """Every row of ``table``, or those whose ``column`` is ``value``; in ``order`` within each
        ``column`` value when the listing is grouped by it (answers and probes: by model)."""
        if value is not None:
            return self._select(table, f"SELECT * FROM {table} WHERE {column} = ? ORDER BY {order}", (value,))
        grouped = column == "model"
        return self._select(table, f"SELECT * FROM {table} ORDER BY {'model, ' if grouped else ''}{order}")

    def count(self, table: str) -> int:
        if table not in ("answers", "scores", "probes", "records", "claims"):
            raise ValueError(table)
        return int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])

    # -- scores ------------------------------------------------------------------------------
    def add_scores(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._insert("scores", SCORE_COLUMNS, rows)

    def add_scores_each(self, rows: Iterable[dict[str, Any]]) -> list[bool]:
        """Insert scores in one transaction; per row, whether it was added (not stored already)."""
        return self._insert_each("scores", SCORE_COLUMNS, rows)

    def existing_score_keys(self, keys: Iterable[str]) -> set[str]:
        return self.existing("scores", keys)

    def scores(self, judge: str | None = None) -> list[dict[str, Any]]:
        return self._listing("scores", "judge", judge, "answer_key, metric")

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
    def probes(self, model: str | None = None) -> list[dict[str, Any]]:
        return self._listing("probes", "model", model, "step, pair_id")

    def add_probes(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._insert("probes", PROBE_COLUMNS, rows)

    def existing_probe_keys(self, keys: Iterable[str]) -> set[str]:
        return self.existing("probes", keys)

    # -- records (typed: emkit.store_records) ----------------------------------------------------
    def put_record(self, kind: str, key: str, value: dict[str, Any], *, replace: bool = True) -> None:
        """Store ``value`` as record ``kind``/``key``, once it fits its kind's model; stored as given
        (sorted JSON, redacted). ``replace=False`` keeps a record already stored under the key."""
        text = encode_record(self.path, kind, key, value)
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self.transaction() as conn:
            conn.execute(
                f"{verb} INTO records(kind, key, value, created) VALUES (?, ?, ?, ?)",
                (kind, key, text, time.time()),
            )

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        """The value stored as ``kind``/``key`` (checked against its kind's model), or None."""
        rows = self._rows("SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key))
        return self._checked(kind, key, rows[0]["value"])[0] if rows else None

    def records(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Every ``kind`` record as (key, value), oldest first (each checked against its model)."""
        return [(key, value) for key, value, _ in self._records(kind)]

    def record_of(self, model: type[R], key: str) -> R | None:
        """The typed twin of :meth:`get_record`: the record as its model (defaults filled in)."""
        rows = self._rows("SELECT value FROM records WHERE kind = ? AND key = ?", (model.KIND, key))
        return self._checked(model.KIND, key, rows[0]["value"])[1] if rows else None  # type: ignore[return-value]

    def records_of(self, model: type[R]) -> list[tuple[str, R]]:
        """The typed twin of :meth:`records`."""
        return [(key, typed) for key, _, typed in self._records(model.KIND)]  # type: ignore[misc]

    def _records(self, kind: str) -> list[tuple[str, dict[str, Any], Any]]:
        rows = self._rows("SELECT key, value FROM records WHERE kind = ? ORDER BY created, key", (kind,))
        return [(r["key"], *self._checked(kind, r["key"], r["value"])) for r in rows]

    def _checked(self, kind: str, key: str, text: Any) -> tuple[dict[str, Any], Any]:
        value = decode_json(self.path, text, "records", f"{kind}/{key}", "value")
        return value, check_record(self.path, kind, key, value, write=False)

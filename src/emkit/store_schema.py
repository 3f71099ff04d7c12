"""The run store's schema, its keys, and the checks made before SQLite sees a file.

Split from :mod:`emkit.store` (which documents what every key covers) to keep each module small;
import these names from :mod:`emkit.store`.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.hashing import stable_hash

SCHEMA_VERSION = 2
DB_NAME = "emkit.sqlite"
SQLITE_HEADER = b"SQLite format 3\x00"

_TABLES = """
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
    created REAL NOT NULL,
    question_hash TEXT,
    model_fingerprint TEXT
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
    created REAL NOT NULL,
    options TEXT NOT NULL DEFAULT '{}'
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
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""
_SCHEMA = _TABLES + _CLAIMS

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
    "question_hash",
    "model_fingerprint",
)
SCORE_COLUMNS = (
    "key",
    "answer_key",
    "metric",
    "judge",
    "method",
    "prompt_hash",
    "score",
    "raw",
    "usage",
    "options",
)
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
_JSON_COLUMNS = {"messages", "params", "tags", "usage", "raw", "options"}
_KEY_VERSION = 2  # in every new key, so no schema-2 key can equal a schema-1 one


def answer_key(
    model: str,
    question_id: str,
    paraphrase_index: int,
    sample_index: int,
    params: dict[str, Any],
    *,
    messages: Sequence[dict[str, Any]] | None = None,
    model_fingerprint: str | None = None,
    question_hash: str | None = None,
) -> str:
    """The identity of one sampled answer: everything that shaped it (see the module docstring).

    ``messages`` is the conversation exactly as sent; the sampling stage always passes it and the
    model's fingerprint (a caller that has neither gets a key of its own, never a sampled one's).
    """
    return stable_hash(
        {
            "v": _KEY_VERSION,
            "model": model,
            "model_fp": model_fingerprint,
            "question": question_hash,
            "q": question_id,
            "p": paraphrase_index,
            "s": sample_index,
            "messages": list(messages) if messages is not None else None,
            "params": params,
        }
    )


def score_key(
    answer_key_: str,
    metric: str,
    judge: str,
    method: str,
    prompt_hash: str,
    options: dict[str, Any] | None = None,
) -> str:
    """The identity of one judgement: a new judge, prompt or score-shaping option gives a new key."""
    return stable_hash(
        {
            "v": _KEY_VERSION,
            "a": answer_key_,
            "m": metric,
            "j": judge,
            "method": method,
            "p": prompt_hash,
            "o": dict(options or {}),
        }
    )


def probe_item_key(model: str, probe_set_hash: str, pair_id: str, step: int | None) -> str:
    """The probe item's identity without the model's weights (what schema 1 used as the whole key)."""
    return stable_hash({"model": model, "probe_set": probe_set_hash, "pair": pair_id, "step": step})


def probe_key(
    model: str, probe_set_hash: str, pair_id: str, step: int | None, model_fingerprint: str | None
) -> str:
    """One probe score: the item (model, probe set content, pair, step) and the model's fingerprint."""
    return probe_key_from_item(probe_item_key(model, probe_set_hash, pair_id, step), model_fingerprint)


def probe_key_from_item(item_key: str, model_fingerprint: str | None) -> str:
    """Split out so a schema-1 key (which is exactly the item key) can be migrated."""
    return stable_hash({"v": _KEY_VERSION, "item": item_key, "model_fp": model_fingerprint})


def default_owner() -> str:
    """A claim owner: host and pid (so a dead local owner is seen at once) and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but not ours to signal
        return False
    return False


def check_store_file(path: Path) -> None:
    """Refuse what is not an emkit store before SQLite sees it (a writer would "initialise" it)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise EmkitError(f"{path}: cannot read the run store: {exc.strerror or exc}") from None
    if not head:
        raise EmkitError(
            f"{path}: empty file (0 bytes) where the run store should be; nothing was written to it "
            "(restore it from a backup, or delete it to start an empty run)"
        )
    if head != SQLITE_HEADER:
        raise EmkitError(f"{path}: not an emkit run store (not an SQLite database); the file was left as is")


def connect(target: str | Path, **options: Any) -> sqlite3.Connection:
    """A connection as every store uses it: autocommit (explicit transactions), a 2-minute wait."""
    return sqlite3.connect(target, timeout=120, isolation_level=None, **options)


def connect_read_only(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """A connection that cannot write to the store, and leaves no file behind when it closes.

    Why several ways (measured with SQLite 3.40, as a user who may not write the run dir):
    - no ``-wal`` file, store writable: a normal connection with ``PRAGMA query_only``, which
      refuses every write statement and, closing last, removes the WAL files it made (``mode=ro``
      would leave an empty ``-wal`` behind);
    - ``mode=ro`` reads a store with its ``-wal`` and ``-shm`` (what a live or killed writer
      leaves) even where nothing may be written;
    - no ``-wal`` and a directory nobody may write: ``mode=ro`` fails ("attempt to write a
      readonly database"); ``immutable=1`` is then exact, since there is no WAL to read;
    - a ``-wal`` without its ``-shm`` where neither may be created: ``mode=ro`` cannot open it,
      and ``immutable`` would ignore the WAL's rows, so a private copy of the two files is read.
    """
    wal = Path(f"{path}-wal")
    if not wal.exists() and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        try:
            conn = connect(path)
            conn.execute("PRAGMA query_only = ON")
            return conn, None
        except sqlite3.OperationalError:
            pass
    uri = path.resolve().as_uri()
    conn = connect(f"{uri}?mode=ro", uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, None
    except sqlite3.OperationalError:
        conn.close()
    if not wal.exists():
        return connect(f"{uri}?mode=ro&immutable=1", uri=True), None
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="emkit-read-"))
    copy = scratch / DB_NAME
    shutil.copyfile(path, copy)
    shutil.copyfile(wal, f"{copy}-wal")
    conn = connect(copy)
    conn.execute("PRAGMA query_only = ON")
    return conn, scratch


def create_store_file(path: Path) -> None:
    """Create the store whole, or not at all: built in a temporary file, then linked into place.

    Why: a process that dies between creating the file and writing its schema would leave a
    zero-byte ``emkit.sqlite``, which must never be mistaken for an empty store later. Linking
    (not renaming) fails when another process created the store first; then theirs is used.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmkitError(f"{path.parent}: cannot create the run directory: {exc.strerror or exc}") from None
    tmp = path.parent / f".{DB_NAME}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(
                "BEGIN;\n" + _SCHEMA + "\nINSERT INTO meta(key, value) VALUES "
                f"('schema_version', '{int(SCHEMA_VERSION)}');\nCOMMIT;"
            )
        finally:
            conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created the store first: use theirs
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(tmp, path)
    except (sqlite3.Error, OSError) as exc:
        raise EmkitError(f"{path.parent}: cannot create the run store: {exc}") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)

"""Opening a run store's file: refusing what is not a store, creating one whole, connecting
(read-only in every way a read verb may meet), and bringing an opened store to the current schema.

Split from :mod:`emkit.store` (which reads and writes rows): everything here happens before the
first row is read, and each step says why it is done that way.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
import uuid
from importlib import import_module
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.store_schema import DB_NAME, SCHEMA, SCHEMA_VERSION, SQLITE_HEADER

# The migration of an older store, named as the backend registry names engines ("module:function")
# and imported only when an old store is opened: it recomputes score keys with the judges' own
# options, and the judges import the store, so a static import here would make the store depend on
# every judge (an import cycle) for a step most runs never take.
MIGRATION = "emkit.store_migrate:migrate"


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
                "BEGIN;\n" + SCHEMA + "\nINSERT INTO meta(key, value) VALUES "
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


def read_version(conn: sqlite3.Connection, path: Path) -> int:
    """The store's schema version; refuse a foreign database or one written by a newer emkit."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if has_meta else None
    if row is None:
        raise EmkitError(
            f"{path}: an SQLite database but not an emkit run store (no schema version); "
            "the file was left as is"
        )
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise EmkitError(f"{path}: table meta: schema_version {row[0]!r} is not a number") from None
    if version > SCHEMA_VERSION:
        raise EmkitError(
            f"{path}: written by a newer emkit (schema version {version} > "
            f"{SCHEMA_VERSION} understood here); upgrade emkit to read it"
        )
    return version


def initialise(conn: sqlite3.Connection, path: Path, run_dir: Path, deadline: float) -> None:
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
            if read_version(conn, path) < SCHEMA_VERSION:  # first, so a store it refuses keeps every byte
                module, _, name = MIGRATION.partition(":")
                getattr(import_module(module), name)(conn, path, run_dir)
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript("BEGIN IMMEDIATE;\n" + SCHEMA + "\nCOMMIT;")
            return
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() >= deadline:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.25)

"""Work on pending items only after claiming them, so two processes never pay for one item.

Why: judging (and sampling through an API) costs money per request. Two processes started on one
run dir plan the same pending items; without coordination both ask for all of them. Here each
chunk of items is claimed in the store first (:meth:`emkit.store.RunStore.claim`: one IMMEDIATE
transaction, a lease per key), and only the claimed ones are asked for. Items another live
process holds are looked at again every ``POLL_S`` until that process stores them or its lease
lapses (it was killed: then they are claimed here), so when the call returns every item is stored.

The ``claims`` table's protocol lives here too (:func:`claim_keys`, :func:`renew`, :func:`release`:
what :meth:`~emkit.store.RunStore.claim` and its siblings run), so the store keeps only storage.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
LEASE_S = 120.0  # a claim's lease; renewed while results arrive
RENEW_EVERY_S = 10.0
POLL_S = 0.25


class ClaimStore(Protocol):
    """What claiming needs of a store: a write transaction and the keys a table holds already."""

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def existing(self, table: str, keys: Iterable[str]) -> set[str]: ...


def default_owner() -> str:
    """A claim owner: host and pid (so a dead local owner is seen at once) and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
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


def claim_keys(
    store: ClaimStore, table: str, keys: Sequence[str], owner: str, lease_s: float
) -> tuple[list[str], int]:
    """Claim the items of ``keys`` not stored in ``table`` and not leased by another live owner.

    One IMMEDIATE transaction, so two processes never claim the same key. A lease held by a
    process of this host that has died, or one past its expiry, is taken over. Returns (the
    keys now claimed by ``owner``, how many are held by others).
    """
    now = time.time()
    with store.transaction() as conn:
        done = store.existing(table, keys)
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
                    dead[holder[0]] = owner_is_dead(holder[0])
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


def renew(store: ClaimStore, owner: str, lease_s: float) -> None:
    """Extend every lease ``owner`` holds (a process still working on its items)."""
    with store.transaction() as conn:
        conn.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease_s, owner))


def release(store: ClaimStore, owner: str) -> None:
    """Drop every lease ``owner`` holds (it is done, or stops: the rest is anyone's again)."""
    with store.transaction() as conn:
        conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))


class Lease:
    """Renews this owner's claims now and then while results arrive (call :meth:`tick` per result)."""

    def __init__(self, store: Any, owner: str, lease_s: float = LEASE_S):
        self.store, self.owner, self.lease_s = store, owner, lease_s
        self._renewed = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._renewed > RENEW_EVERY_S:
            self.store.renew_claims(self.owner, self.lease_s)
            self._renewed = time.monotonic()


def run_claimed(
    store: Any,
    table: str,
    items: Sequence[T],
    key: Callable[[T], str],
    work: Callable[[list[T]], None],
    *,
    owner: str,
    lease_s: float = LEASE_S,
    chunk: int = 64,
    on_taken: Callable[[int], None] | None = None,
    stream: Callable[[Iterator[T], int], None] | None = None,
) -> None:
    """Call ``work(batch)`` on claimed chunks of ``items`` until every item is stored in ``table``.

    With ``stream``, each pass is one ``stream(claimed_items, at_most)`` call instead: the iterator claims
    the next chunk only when the consumer pulls past the last claimed item, so an API pool keeps
    every connection busy across chunks (``work`` chunk by chunk drains it at each chunk's end).
    An item this call claimed is worked on once, whatever ``work`` delivered; items stored by
    another process are reported with ``on_taken(count)``.
    """
    remaining = list(items)
    while remaining:
        attempted: set[str] = set()
        batches = _claimed_batches(store, table, remaining, key, owner, lease_s, chunk, attempted)
        if stream is not None:
            stream((item for batch in batches for item in batch), len(remaining))
        else:
            for batch in batches:
                work(batch)
        done = store.existing(table, [key(i) for i in remaining])
        taken = sum(1 for i in remaining if key(i) in done and key(i) not in attempted)
        if taken and on_taken is not None:
            on_taken(taken)
        remaining = [i for i in remaining if key(i) not in done and key(i) not in attempted]
        if remaining:
            time.sleep(POLL_S)


def _claimed_batches(
    store: Any,
    table: str,
    items: list[T],
    key: Callable[[T], str],
    owner: str,
    lease_s: float,
    chunk: int,
    attempted: set[str],
) -> Iterator[list[T]]:
    """Each chunk's claimed items (claimed only when asked for), their keys added to ``attempted``."""
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        mine, _ = store.claim(table, [key(i) for i in part], owner, lease_s)
        claimed = set(mine)
        batch = [i for i in part if key(i) in claimed]
        if batch:
            attempted.update(claimed)
            yield batch

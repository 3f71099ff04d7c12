"""Work on pending items only after claiming them, so two processes never pay for one item.

Why: judging (and sampling through an API) costs money per request. Two processes started on one
run dir plan the same pending items; without coordination both ask for all of them. Here each
chunk of items is claimed in the store first (:meth:`emkit.store.RunStore.claim`: one IMMEDIATE
transaction, a lease per key), and only the claimed ones are asked for. Items another live
process holds are looked at again every ``POLL_S`` until that process stores them or its lease
lapses (it was killed: then they are claimed here), so when the call returns every item is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
LEASE_S = 120.0  # a claim's lease; renewed while results arrive
RENEW_EVERY_S = 10.0
POLL_S = 0.25


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
) -> None:
    """Call ``work(batch)`` on claimed chunks of ``items`` until every item is stored in ``table``.

    An item this call claimed is worked on once, whatever ``work`` delivered; items stored by
    another process are reported with ``on_taken(count)``.
    """
    remaining = list(items)
    while remaining:
        attempted: set[str] = set()
        for start in range(0, len(remaining), chunk):
            part = remaining[start : start + chunk]
            mine, _ = store.claim(table, [key(i) for i in part], owner, lease_s)
            claimed = set(mine)
            batch = [i for i in part if key(i) in claimed]
            if batch:
                attempted.update(claimed)
                work(batch)
        done = store._existing(table, [key(i) for i in remaining])
        taken = sum(1 for i in remaining if key(i) in done and key(i) not in attempted)
        if taken and on_taken is not None:
            on_taken(taken)
        remaining = [i for i in remaining if key(i) not in done and key(i) not in attempted]
        if remaining:
            time.sleep(POLL_S)

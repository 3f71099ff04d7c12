"""Judgements stored in small batches: one transaction per ~50 ms of replies, not one per reply.

Why: at an API's full rate (160 calls/s for a 32-call limit at 200 ms) a transaction per reply
spent the client's CPU between one reply and that connection's next request (measured:
docs/benchmarks.md). Rows wait here at most ``max_age_s`` (a timer on the running event loop
flushes them when no further reply comes) or until ``max_rows`` are waiting, and every batch is
flushed before the stage looks at what is stored, releases its claims or returns.

What a kill costs: at most the rows waiting here (paid for, not stored), which a rerun asks for
again; keys make that idempotent (``ON CONFLICT DO NOTHING``), so nothing is ever stored twice and
nothing already stored is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from emkit.judge.base import Judgement, score_row
from emkit.judge.prompts import JudgeTask

MAX_ROWS = 64
MAX_AGE_S = 0.05
Stored = Callable[[list[tuple[JudgeTask, Judgement, bool]]], None]  # (task, judgement, added)


class ScoreWriter:
    """``add(task, judgement)`` per reply; ``on_stored(batch)`` after each batch is committed, with
    per row whether it was added (False: another writer had stored that key already)."""

    def __init__(
        self, store: Any, on_stored: Stored, *, max_rows: int = MAX_ROWS, max_age_s: float = MAX_AGE_S
    ) -> None:
        self.store = store
        self.on_stored = on_stored
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._rows: list[tuple[JudgeTask, Judgement]] = []
        self._since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None

    def add(self, task: JudgeTask, judgement: Judgement) -> None:
        self._raise_pending()
        if not self._rows:
            self._since = time.monotonic()
            self._arm()
        self._rows.append((task, judgement))
        if len(self._rows) >= self.max_rows or time.monotonic() - self._since >= self.max_age_s:
            self.flush()

    def flush(self) -> None:
        """Store what is waiting, in one transaction (a failure is raised; the rows stay waiting)."""
        self._raise_pending()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._rows:
            return
        rows = self._rows
        flags = self.store.add_scores_each([score_row(task, judgement) for task, judgement in rows])
        self._rows = []
        self.on_stored(
            [(task, judgement, added) for (task, judgement), added in zip(rows, flags, strict=True)]
        )

    @property
    def waiting(self) -> int:
        return len(self._rows)

    def _arm(self) -> None:
        """Flush after ``max_age_s`` from the running event loop (an API engine's), if any."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.max_age_s, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        try:
            self.flush()
        except BaseException as err:  # raised from the next add or flush, in the stage's own frames
            self._error = err

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

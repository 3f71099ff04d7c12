"""A fixed pool of API calls over a (possibly lazy) stream of requests, replies handed over in order
of arrival. Apart from :mod:`emkit.engines.openai_client` (which builds, retries and counts each
call) so that each stays short.

Why the pool looks like this:

- ``concurrency`` workers pull requests one at a time (never a ``gather`` over thousands of
  coroutines), so a lazy stream is pulled only as a connection frees up.
- A worker sends its next request the moment a reply lands; replies are handed to ``deliver`` by
  one deliverer task, woken after the workers that had replies have sent their next requests.
  Why: a server at its limit answers its calls in waves, and handing each reply over (parsing, the
  caller's store write) before the next send delayed every later connection of the wave
  (measured: docs/benchmarks.md, the judging paragraph).
- The first failure (a request's, or a delivery's) cancels the rest; replies that had already
  arrived, and were paid for, are still delivered (unless delivering is what failed).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

Call = Callable[[dict[str, Any], str], Awaitable[Any]]  # (request, where for the error line) -> reply


async def run_pool(
    call: Call,
    pending: Iterator[tuple[int, dict[str, Any]]],
    total: int | None,
    concurrency: int,
    deliver: Callable[[int, Any], None],
) -> None:
    """Every ``(index, request)`` of ``pending`` through ``call``; ``deliver(index, reply)`` for each.
    ``total``: how many there are (None for a stream; it only words the error line)."""
    ready: collections.deque[tuple[int, Any]] = collections.deque()
    wake = asyncio.Event()

    def hand_over() -> None:
        while ready:
            deliver(*ready.popleft())

    async def worker() -> None:
        for index, request in pending:
            ready.append((index, await call(request, place(index, total))))
            wake.set()

    async def deliverer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            hand_over()

    slots = concurrency if total is None else min(concurrency, total)
    workers = [asyncio.ensure_future(worker()) for _ in range(slots)]
    calls = asyncio.gather(*workers)
    handing = asyncio.ensure_future(deliverer())
    delivery_failed = False
    try:
        done, _ = await asyncio.wait([handing, calls], return_when=asyncio.FIRST_COMPLETED)
        if handing in done:  # the deliverer ends only by failing
            delivery_failed = True
            handing.result()
        calls.result()  # a request's failure is raised here
    finally:
        for task in (*workers, handing):
            task.cancel()
        await asyncio.gather(calls, handing, return_exceptions=True)
        if not delivery_failed:
            hand_over()


def place(index: int, total: int | None) -> str:
    """Which request failed, by its place in the batch, for the one error line."""
    if total == 1:
        return "request"
    return f"request {index + 1}" + (f" of {total}" if total is not None else "")

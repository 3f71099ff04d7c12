"""Requests of inspect's concurrent samples gathered into batches for one emkit engine.

Why: inspect runs up to ``max_connections`` samples at once and each asks the model for one reply;
a local model answers a batch of them in little more than the time of one. emkit's decoding gives
each request its own random stream (:mod:`emkit.engines.hf_backend`), so an answer does not depend
on which requests share its batch (up to float rounding), and batching changes the speed only.

How: a request waits in ``pending``; the first request of an empty queue schedules a flush after
``wait_s`` and a full queue flushes at once. A flush takes everything pending, one engine call per
distinct set of sampling parameters, in a worker thread; flushes run one at a time (a model's
weights are not shared across threads), and what arrives meanwhile waits for the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from emkit.engines.base import Generation, SamplingParams

Conversation = list[dict[str, str]]
Runner = Callable[[list[Conversation], SamplingParams, list[int]], list[Generation]]


@dataclass
class Request:
    messages: Conversation
    params: SamplingParams
    key: int
    future: asyncio.Future


class Batcher:
    """Gathers requests into batches of at most ``size`` for ``run(conversations, params, keys)``."""

    def __init__(self, run: Runner, size: int, wait_s: float = 0.02) -> None:
        self.run = run
        self.size = max(1, int(size))
        self.wait_s = wait_s
        self.pending: list[Request] = []
        self.locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def submit(self, messages: Conversation, params: SamplingParams, key: int) -> Generation:
        loop = asyncio.get_running_loop()
        request = Request(messages, params, key, loop.create_future())
        self.pending.append(request)
        if len(self.pending) >= self.size:
            await self.flush()
        elif len(self.pending) == 1:
            loop.call_later(self.wait_s, lambda: asyncio.ensure_future(self.flush()))
        return await request.future

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        lock = self.locks.setdefault(loop, asyncio.Lock())
        async with lock:
            mine = [r for r in self.pending if r.future.get_loop() is loop]
            self.pending = [r for r in self.pending if r.future.get_loop() is not loop]
            by_params: dict[SamplingParams, list[Request]] = {}
            for request in mine:
                by_params.setdefault(request.params, []).append(request)
            for params, group in by_params.items():
                for start in range(0, len(group), self.size):
                    await self._run(group[start : start + self.size], params)

    async def _run(self, batch: list[Request], params: SamplingParams) -> None:
        try:
            out = await anyio.to_thread.run_sync(
                self.run, [r.messages for r in batch], params, [r.key for r in batch]
            )
        except BaseException as exc:  # every waiting sample sees the engine's error
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for request, generation in zip(batch, out, strict=True):
            if not request.future.done():
                request.future.set_result(generation)

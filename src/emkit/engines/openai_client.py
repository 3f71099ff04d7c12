"""The transport of the ``openai`` backend: one chat-completions request at a time, many at once.

Why it looks like this:

- The official ``openai`` SDK (``AsyncOpenAI``) speaks the protocol, but its own retries are off
  (``max_retries=0``): :mod:`emkit.engines.retry` decides, so attempts are bounded and counted, waits
  use full jitter and honour ``Retry-After``, and a malformed 200 reply is retried too.
- Concurrency is bounded twice: a fixed pool of ``concurrency`` workers pulls requests (never a
  ``gather`` over thousands of coroutines), and a semaphore of the same size guards every HTTP
  call, including those made through :meth:`ChatClient.call` from another event loop.
- The sync entries (:meth:`ChatClient.run_many`; :meth:`ChatClient.run_stream` for a lazy stream
  of requests, :mod:`emkit.engines.call_pool`) run the event loop in the calling thread
  (``asyncio.run``) and call ``on_result`` there as each answer arrives, so a stage can write it to
  the run store (whose SQLite connection is not thread-safe) at once: a crash loses only what is in
  flight. Inside an already running loop (a notebook) the loop runs in a helper thread and results
  are still handed to ``on_result`` in the calling thread.
- The key comes from an environment variable only; it is never logged, never part of an error
  message or of this object's repr. Credentials given inside the base URL (``user:KEY@`` or
  ``?api_key=KEY``) are used to connect but registered with :mod:`emkit.redact`, so they are
  masked wherever emkit writes, prints or logs; ``base_url`` is the clean form.
- Every reply is parsed through one typed model (:mod:`emkit.engines.replies`), so a reply with
  bad field types is one clear error naming the request and the field, never a traceback.

What a request asks and what its reply means is the engine's business
(:mod:`emkit.engines.openai_backend`); this module only moves requests and replies.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from emkit.endpoints import display_url, split_url
from emkit.engines.call_pool import run_pool
from emkit.engines.openai_wire import (
    MalformedResponse,
    decode_reply,
    error_detail,
    is_retryable,
    request_text,
)
from emkit.engines.replies import ChatReply
from emkit.engines.retry import RetryPolicy, parse_retry_after
from emkit.errors import EmkitError, MissingKeyError
from emkit.redact import clean_url, install_log_redaction, redact, register

logger = logging.getLogger(__name__)

install_log_redaction()
T = TypeVar("T")
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class APIRequestError(EmkitError):
    """A request that failed for good: a non-retryable status, or retries used up."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1):
        self.status = status
        self.attempts = attempts
        super().__init__(message)


class _Secret:
    """Holds the key so that ``repr``/``vars`` of the engine never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"


@dataclass
class _LoopState:
    """A client and semaphore bound to one event loop (httpx clients cannot cross loops)."""

    loop: asyncio.AbstractEventLoop
    client: Any
    semaphore: asyncio.Semaphore


class ChatClient:
    """Chat completions of one model at one endpoint: bounded, retried, counted.

    ``name`` starts every error and log line (the engine's model name). ``usage`` accumulates token
    counts, requests and retries over all calls.
    """

    def __init__(
        self,
        model: str,
        name: str,
        *,
        base_url: str | None,
        api_key_env: str,
        concurrency: int,
        timeout: float,
        retry: RetryPolicy,
        jitter_seed: int | None,
    ) -> None:
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise MissingKeyError(
                api_key_env,
                purpose=f"{name}; a local server that ignores keys still needs a placeholder value",
            )
        register(key)
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        connect, query, _ = split_url(url)  # registers any credential in the URL
        if "@" in urlsplit(url).netloc:  # keep the userinfo: httpx sends it as Basic auth
            connect = url.split("?", 1)[0].split("#", 1)[0]
        self.model = model
        self.name = name
        self.api_key_env = api_key_env
        self.base_url = clean_url(url)  # safe to show and store; the credentials stay below
        self._connect = _Secret(connect)
        self._query = query
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.retry = retry
        self.usage: dict[str, int] = {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "requests": 0,
            "retries": 0,
        }
        self._key = _Secret(key)
        self._rng = random.Random(jitter_seed)
        self._async_state: _LoopState | None = None
        self.batch: Any = None  # a BatchSession (emkit.engines.batch_session): run_many goes through it

    def __repr__(self) -> str:
        return f"ChatClient({self.name!r}, {display_url(self.base_url)!r}, key from ${self.api_key_env})"

    def run_many(
        self,
        requests: Sequence[dict[str, Any]],
        convert: Callable[[ChatReply], T],
        on_result: Callable[[int, T], None] | None,
    ) -> list[T]:
        """Every request (``messages`` plus SDK parameters), each reply converted, in input order;
        ``on_result(index, item)`` is called in this thread as each arrives."""
        requests = list(requests)
        results: list[Any] = [None] * len(requests)
        if not requests:
            return results
        if self.batch is not None:
            return self.batch.run(self, requests, convert, on_result)
        try:
            asyncio.get_running_loop()
        except RuntimeError:

            def deliver(index: int, item: T) -> None:
                results[index] = item
                if on_result is not None:
                    on_result(index, item)

            asyncio.run(self._batch(requests, convert, deliver))
            return results
        return self._run_many_in_thread(requests, convert, on_result, results)

    async def call(self, request: dict[str, Any]) -> ChatReply:
        """One request (retried, semaphore-bounded) from inside the caller's own event loop."""
        return await self._call(self._loop_state(), request)

    async def aclose(self) -> None:
        """Close the client :meth:`call` made, in the loop it was made in."""
        state, self._async_state = self._async_state, None
        if state is not None:
            await state.client.close()

    def forget(self) -> None:
        """Drop the client of :meth:`call` (``run_many`` closes its own clients when done)."""
        self._async_state = None

    def _run_many_in_thread(
        self,
        requests: list[dict[str, Any]],
        convert: Callable[[ChatReply], T],
        on_result: Callable[[int, T], None] | None,
        results: list[Any],
    ) -> list[T]:
        """A loop already runs in this thread: run ours in a helper, deliver results here."""
        done = object()
        inbox: queue.Queue[tuple[Any, Any]] = queue.Queue()
        stop = threading.Event()

        def deliver(index: int, item: T) -> None:
            if stop.is_set():
                raise asyncio.CancelledError
            inbox.put((index, item))

        def target() -> None:
            try:
                asyncio.run(self._batch(requests, convert, deliver))
                inbox.put((done, None))
            except BaseException as err:
                inbox.put((done, err))

        helper = threading.Thread(target=target, name=f"emkit-{self.name}", daemon=True)
        helper.start()
        try:
            while True:
                index, item = inbox.get()
                if index is done:
                    if item is not None:
                        raise item
                    return results
                results[index] = item
                if on_result is not None:
                    on_result(index, item)
        finally:
            stop.set()

    def can_stream(self) -> bool:
        """Whether :meth:`run_stream` can run here: not through the Batch API (it needs its requests
        up front) and not inside a running event loop (the stream is pulled in the loop's thread,
        which must be the caller's: the stream may touch the caller's SQLite connection)."""
        if self.batch is not None:
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    def run_stream(
        self,
        requests: Iterable[dict[str, Any]],
        convert: Callable[[ChatReply], T],
        on_result: Callable[[int, T], None],
        *,
        total: int | None = None,
    ) -> None:
        """Like :meth:`run_many`, but ``requests`` is pulled lazily, one request as a worker frees up,
        so the pool of ``concurrency`` calls stays full for as long as the stream lasts (the caller
        can claim work in chunks inside the iterator without the pool draining between chunks).
        ``on_result(index, item)`` gets the request's position in the stream; nothing is kept.
        ``total``: how many the stream holds at most (for error lines). Only where :meth:`can_stream`."""
        if not self.can_stream():
            raise RuntimeError("run_stream needs no running event loop and no Batch API session (can_stream)")
        stream = iter(requests)
        first = next(stream, None)
        if first is not None:  # an empty stream opens no client
            pending = enumerate(itertools.chain([first], stream))
            asyncio.run(self._pool(pending, total, convert, on_result))

    async def _batch(
        self,
        requests: list[dict[str, Any]],
        convert: Callable[[ChatReply], T],
        deliver: Callable[[int, T], None],
    ) -> None:
        await self._pool(enumerate(requests), len(requests), convert, deliver)

    async def _pool(
        self,
        pending: Iterator[tuple[int, dict[str, Any]]],
        total: int | None,
        convert: Callable[[ChatReply], T],
        deliver: Callable[[int, T], None],
    ) -> None:
        """The requests through :func:`~emkit.engines.call_pool.run_pool` on a client of this loop."""
        state = self._new_state()
        try:
            await run_pool(
                lambda request, where: self._call(state, request, where),
                pending,
                total,
                self.concurrency,
                lambda index, data: deliver(index, convert(data)),
            )
        finally:
            await state.client.close()

    def sync_client(self) -> Any:
        """A synchronous SDK client for this endpoint (the files and batches calls), retries off."""
        from openai import OpenAI

        query = self._query or None
        return OpenAI(
            api_key=self._key.get(), base_url=self._connect.get(), default_query=query, max_retries=0
        )

    def _new_state(self) -> _LoopState:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(
            api_key=self._key.get(),
            base_url=self._connect.get(),
            default_query=self._query or None,
            max_retries=0,
            timeout=self.timeout,
        )
        return _LoopState(asyncio.get_running_loop(), client, asyncio.Semaphore(self.concurrency))

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._async_state is None or self._async_state.loop is not loop:
            self._async_state = self._new_state()
        return self._async_state

    async def _call(self, state: _LoopState, request: dict[str, Any], where: str = "request") -> ChatReply:
        """One request with bounded retries; returns the decoded reply or raises APIRequestError."""
        import openai

        request = {"model": self.model, **request}
        policy = self.retry
        for attempt in range(1, policy.max_attempts + 1):
            retry_after: float | None = None
            try:
                async with state.semaphore:
                    text = await request_text(state.client, request)
                data = decode_reply(text)
            except TypeError as err:
                raise EmkitError(f"{self.name}: invalid chat request parameter: {err}") from None
            except openai.APIStatusError as err:
                detail = self._redact(error_detail(err))
                if not is_retryable(err):
                    raise APIRequestError(
                        self._describe_status(err.status_code, detail),
                        status=err.status_code,
                        attempts=attempt,
                    ) from None
                retry_after = parse_retry_after(err.response.headers)
                last = f"HTTP {err.status_code}: {detail}"
            except openai.APITimeoutError:
                last = f"timed out after {self.timeout:g} s"
            except openai.APIConnectionError as err:
                cause = type(err.__cause__).__name__ if err.__cause__ is not None else "unknown"
                last = f"connection error ({cause})"
            except MalformedResponse as err:
                last = f"malformed reply: {self._redact(str(err))}"
            else:
                self._count(data)
                return data
            if attempt >= policy.max_attempts:
                raise APIRequestError(
                    f"{self.name}: {where} to {display_url(self.base_url)} failed after {attempt} "
                    f"attempt(s); last error: {last}",
                    attempts=attempt,
                )
            delay = policy.delay(attempt, retry_after, self._rng)
            self.usage["retries"] += 1
            logger.info(
                "%s: %s; retry %d of %d in %.2f s", self.name, last, attempt, policy.max_retries, delay
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _count(self, reply: ChatReply) -> None:
        usage = reply.usage
        prompt = (usage.prompt_tokens or 0) if usage else 0
        completion = (usage.completion_tokens or 0) if usage else 0
        self.usage["prompt_tokens"] += prompt
        self.usage["completion_tokens"] += completion
        self.usage["total_tokens"] += (usage.total_tokens if usage else None) or prompt + completion
        self.usage["requests"] += 1

    def _redact(self, text: str) -> str:
        return redact(text)  # the key and URL credentials were registered in __init__

    def _describe_status(self, status: int, detail: str) -> str:
        where = display_url(self.base_url)
        if status in (401, 403):
            return (
                f"{self.name}: {where} rejected the API key from ${self.api_key_env} "
                f"(HTTP {status}): {detail}"
            )
        if status == 404:
            return f"{self.name}: HTTP 404 from {where}: {detail} (check the model name and the base URL)"
        return f"{self.name}: HTTP {status} from {where}: {detail}"


__all__ = ["APIRequestError", "ChatClient", "MalformedResponse", "display_url"]

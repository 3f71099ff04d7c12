"""The ``openai`` backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM server, llama.cpp, Ollama...).

The engine decides what each call asks (the sampling request, the paper's judge request) and turns
the typed replies (:mod:`emkit.engines.replies`) into the contract's results: a
:class:`~emkit.engines.base.Generation`, a ``{token: logprob}`` dict, a typed
:class:`~emkit.engines.abilities.NextToken`. How requests travel (bounded concurrency, retries,
the key and URL credentials kept out of every message) is :mod:`emkit.engines.openai_client`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from emkit.engines.abilities import NextToken, NextTokenCallback
from emkit.engines.base import Conversation, Engine, Generation, GenerationBatch, NotSupported
from emkit.engines.decoding import merge_by_text
from emkit.engines.openai_client import APIRequestError, ChatClient, MalformedResponse, display_url
from emkit.engines.replies import ChatReply
from emkit.engines.retry import RetryPolicy
from emkit.errors import EmkitError


class OpenAIEngine(Engine):
    """Chat completions against an OpenAI-compatible endpoint, bounded, retried, and resumable.

    ``max_retries`` retries follow the first attempt (so at most ``max_retries + 1`` requests per
    item); ``backoff_base``/``backoff_max`` shape the exponential backoff (seconds). ``timeout`` is
    the SDK's per-request timeout in seconds. ``usage`` accumulates token counts over all calls.
    """

    paid = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = 60.0,
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        jitter_seed: int | None = None,
        batch: bool = False,
        batch_poll_s: float = 30.0,
        batch_timeout_s: float | None = None,
    ) -> None:
        if not model:
            raise EmkitError("openai backend: a model name is required, e.g. openai/gpt-4o-2024-08-06")
        if concurrency < 1:
            raise EmkitError(f"openai/{model}: concurrency must be >= 1 (got {concurrency})")
        self.model = model
        self.name = f"openai/{model}"
        self.client = ChatClient(
            model,
            self.name,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            retry=RetryPolicy(max_retries=max_retries, base_delay=backoff_base, max_delay=backoff_max),
            jitter_seed=jitter_seed,
        )
        self.base_url = self.client.base_url  # the clean form, safe to show and store
        self.concurrency = concurrency
        self.usage = self.client.usage  # the client's counts, updated as calls return
        self.batch = bool(batch)
        self.batch_options = {"poll_s": batch_poll_s, "timeout_s": batch_timeout_s}

    def use_batch_store(
        self, store: Any, say: Callable[[str], None] = print, heartbeat: Callable[[], None] | None = None
    ) -> None:
        """Send every request through the Batch API, recorded in ``store`` (half price, resumable:
        :mod:`emkit.engines.batch_session`); only for an engine opened with ``batch=True``."""
        if not self.batch:
            return
        from emkit.engines.batch_session import BatchSession

        self.client.batch = BatchSession(store, say=say, heartbeat=heartbeat, **self.batch_options)

    def __repr__(self) -> str:
        return (
            f"OpenAIEngine(name={self.name!r}, base_url={display_url(self.base_url)!r}, "
            f"concurrency={self.concurrency}, key from ${self.client.api_key_env})"
        )

    # ------------------------------------------------------------------ the Engine contract
    def _generate(self, batch: GenerationBatch) -> list[Generation]:
        """One chat completion per conversation, each with its own ``seed``: ``seeds[i]`` when given,
        else ``params.seed + i``, so repeated samples of one conversation differ (a server that
        honours ``seed`` would otherwise return the same answer every time)."""
        params, seeds = batch.params, batch.seeds
        requests = [
            {
                "messages": list(conv),
                "temperature": params.temperature,
                "top_p": params.top_p,
                "max_tokens": params.max_new_tokens,
                "seed": seeds[i] if seeds is not None else params.seed + i,
            }
            for i, conv in enumerate(batch.conversations)
        ]
        return self.client.run_many(requests, self._to_generation, batch.on_result)

    def _top_logprobs(self, conversations: list[Conversation], top_k: int) -> list[dict[str, float]]:
        """The paper's judge request; OpenAI allows ``top_k`` up to 20."""
        return self.client.run_many(self._judge_requests(conversations, top_k), self._to_top, None)

    def _next_tokens(
        self, conversations: list[Conversation], top_k: int, on_result: NextTokenCallback | None, chunk: int
    ) -> list[NextToken]:
        """Each reply typed as it arrives: the first position's entries in the server's order
        (repeats kept), the generated token, and the reply's usage."""
        requests = self._judge_requests(conversations, top_k)
        return self.client.run_many(requests, self._to_next_token, on_result)

    def can_stream(self) -> bool:
        return self.client.can_stream()

    def next_token_stream(
        self,
        conversations: Iterable[Conversation],
        top_k: int,
        on_result: NextTokenCallback,
        *,
        total: int | None = None,
    ) -> None:
        """The judge requests of a lazy stream of conversations (:class:`StreamsNextTokens`)."""
        requests = (self._judge_request(conv, top_k) for conv in conversations)
        self.client.run_stream(requests, self._to_next_token, on_result, total=total)

    def _sequence_logprobs(self, conversations: list[Conversation], replies: list[str]) -> list[list[float]]:
        raise NotSupported(
            f"{self.name}: the chat completions API cannot score a given reply token by token; "
            "use a local model (hf/... or embedded/...) for probes and the exact judge, "
            "or the logprob judge (top_logprobs) with this model"
        )

    def close(self) -> None:
        """Forget the client of :meth:`achat` (sync calls close their own clients when done)."""
        self.client.forget()

    # ------------------------------------------------------------------ general requests
    def chat_many(
        self,
        requests: Sequence[Mapping[str, Any]],
        on_result: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Arbitrary chat.completions requests (``messages`` plus any SDK parameter, e.g. ``n``).

        ``model`` defaults to this engine's. Returns the decoded JSON replies in input order and
        calls ``on_result(index, reply)`` as each arrives. Server-specific fields go in ``extra_body``.
        """
        return self.client.run_many([dict(r) for r in requests], ChatReply.as_dict, on_result)

    async def achat(self, messages: Conversation, **params: Any) -> dict[str, Any]:
        """One chat completion (retried, semaphore-bounded) from inside your own event loop.

        Returns the decoded JSON reply. Call :meth:`aclose` in that loop when done.
        """
        reply = await self.client.call({"messages": list(messages), **params})
        return reply.as_dict()

    async def aclose(self) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------------ requests and replies
    @staticmethod
    def _judge_request(conversation: Conversation, top_k: int) -> dict[str, Any]:
        """The paper's judge request: one token at temperature 0 with its top-k alternatives."""
        return {
            "messages": list(conversation),
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": top_k,
            "seed": 0,
        }

    @classmethod
    def _judge_requests(cls, conversations: Sequence[Conversation], top_k: int) -> list[dict[str, Any]]:
        return [cls._judge_request(conv, top_k) for conv in conversations]

    def _to_generation(self, reply: ChatReply) -> Generation:
        choice = reply.choices[0]
        return Generation(
            text=choice.message.content or choice.message.refusal or "",
            finish_reason=choice.finish_reason or "stop",
            usage=_token_counts(reply),
        )

    def _first_position(self, reply: ChatReply, advice: str) -> Any:
        """The first generated position's logprobs, or NotSupported saying what to use instead."""
        logprobs = reply.choices[0].logprobs
        content = logprobs.content if logprobs is not None else None
        if not content:
            raise NotSupported(f"{self.name}: the server returned no logprobs{advice}")
        return content[0]

    def _to_top(self, reply: ChatReply) -> dict[str, float]:
        first = self._first_position(
            reply,
            " for a logprobs=True request; use a judge mode that samples instead of reading logprobs",
        )
        return merge_by_text((e.token, e.logprob) for e in (first.top_logprobs or [first]))

    def _to_next_token(self, reply: ChatReply) -> NextToken:
        first = self._first_position(reply, "; use --method sampled for this judge")
        entries = tuple((e.token, float(e.logprob)) for e in (first.top_logprobs or [first]))
        return NextToken(entries, first.token, _token_counts(reply))


def _token_counts(reply: ChatReply) -> dict[str, int]:
    """The reply's prompt and completion tokens (0 where the server does not say)."""
    usage = reply.usage
    counts = {
        "prompt_tokens": (usage.prompt_tokens or 0) if usage else 0,
        "completion_tokens": (usage.completion_tokens or 0) if usage else 0,
    }
    if usage is not None and (usage.model_extra or {}).get("emkit_batch"):
        counts["batch_requests"] = 1  # how it was obtained: the stored row says so, the cost halves
    return counts


__all__ = ["APIRequestError", "MalformedResponse", "OpenAIEngine"]

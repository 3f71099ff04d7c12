"""The one small protocol every backend implements.

- ``generate``: answers for a list of chat conversations (lists of ``{"role", "content"}``).
- ``sequence_logprobs``: per-token log-probabilities of given assistant replies (probes, exact judge).
- ``top_logprobs``: the next-token top-k distribution after a conversation (the paper's judge).

Backends: ``hf`` (transformers; embedded models use it too), ``openai`` (any OpenAI-compatible
endpoint), ``vllm`` (offline batch). A backend that cannot do something raises
:class:`NotSupported` with a message that says what to use instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from emkit.errors import EmkitError

Message = dict[str, str]
Conversation = list[Message]


class NotSupported(EmkitError):
    """The backend cannot do this operation (e.g. sequence log-probabilities over an API)."""


@dataclass(frozen=True)
class SamplingParams:
    """The paper's defaults: temperature 1, top_p 1, up to 600 new tokens."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 600
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generation:
    text: str
    finish_reason: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)


# Called as results arrive, so a stage can store each one at once (a kill loses only what is in flight).
ResultCallback = Callable[[int, Generation], None]


@runtime_checkable
class Engine(Protocol):
    name: str  # the full model name, e.g. "embedded/smollm2-135m@runs/x/adapter"

    def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        *,
        seeds: Sequence[int] | None = None,
        on_result: ResultCallback | None = None,
    ) -> list[Generation]: ...

    def sequence_logprobs(
        self, conversations: Sequence[Conversation], replies: Sequence[str]
    ) -> list[list[float]]: ...

    def top_logprobs(
        self, conversations: Sequence[Conversation], top_k: int = 20
    ) -> list[dict[str, float]]: ...

    def close(self) -> None: ...


class EngineBase:
    """What every backend shares: the optional operations' defaults, stated once.

    A backend implements ``generate`` and what it can of ``sequence_logprobs`` / ``top_logprobs``;
    :meth:`next_token_logprobs` (the paper's judge call, typed) falls back on ``top_logprobs`` in
    chunks, so a judge asks every engine the same way.
    """

    name: str
    fingerprint: str | None = None
    paid: bool = False  # requests go over a network and are paid per call

    def next_token_logprobs(
        self,
        conversations: Sequence[Conversation],
        top_k: int = 20,
        *,
        on_result: Callable[[int, Any], None] | None = None,
        chunk: int = 16,
    ) -> list[Any]:
        """One :class:`~emkit.engines.abilities.NextToken` per conversation, delivered as each is ready."""
        from emkit.engines.abilities import NextToken

        out: list[Any] = []
        for start in range(0, len(conversations), chunk):
            part = list(conversations[start : start + chunk])
            tops = self.top_logprobs(part, top_k)  # type: ignore[attr-defined]
            for offset, top in enumerate(tops):
                item = NextToken(tuple(top.items()))
                out.append(item)
                if on_result is not None:
                    on_result(start + offset, item)
        return out

    def close(self) -> None:
        """Release what the engine holds; the default holds nothing."""

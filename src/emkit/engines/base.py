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

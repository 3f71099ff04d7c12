"""The whole engine contract, stated once: :class:`Engine`, the base class of every backend.

- ``generate``: answers for a list of chat conversations (lists of ``{"role", "content"}``).
- ``sequence_logprobs``: per-token log-probabilities of given assistant replies (probes).
- ``top_logprobs``: the next-token top-k distribution after a conversation, merged by text.
- ``next_token_logprobs``: the same distribution typed as :class:`~emkit.engines.abilities.NextToken`
  (the paper's judge call), on every engine.
- ``close`` (and ``with engine:``), and the attributes ``name``, ``fingerprint``, ``paid``, ``concurrency``.

Why a base class and not only a protocol: what is shared is then written once (the checks of the
arguments, the fallback of ``next_token_logprobs`` on ``top_logprobs``, the NotSupported answers
of a backend that cannot score), and a new backend implements just what it can: ``_generate``
and, where its model allows, ``_sequence_logprobs`` and ``_top_logprobs``. Abilities that only
some backends have are protocols in :mod:`emkit.engines.abilities`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

from emkit.engines.abilities import Conversation, Message, NextToken, NextTokenCallback
from emkit.errors import EmkitError


class NotSupported(EmkitError):
    """The backend cannot do this operation (e.g. sequence log-probabilities over an API)."""


class SeedCountError(EmkitError, ValueError):
    """``seeds`` given for another number of conversations: a caller's bug, said in one line."""


@dataclass(frozen=True)
class SamplingParams:
    """How answers are drawn; the defaults are the paper's (temperature 1, top_p 1, 600 tokens).

    ``seed`` is mixed into every request's own random stream, so changing it changes every answer
    even when a caller passes per-request seeds.
    """

    temperature: float = 1.0  # 0 is greedy
    top_p: float = 1.0  # the nucleus: the smallest set of tokens whose mass reaches top_p
    max_new_tokens: int = 600
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generation:
    """One answer: its text, why it ended (``stop`` or ``length``), and the tokens it used."""

    text: str
    finish_reason: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)


# Called as results arrive, so a stage can store each one at once (a kill loses only what is in flight).
ResultCallback = Callable[[int, Generation], None]


@dataclass(frozen=True)
class GenerationBatch:
    """What :meth:`Engine.generate` was asked, checked: the one input of a backend's ``_generate``.

    ``seeds`` has one entry per conversation, or is None (the positions ``0..n-1`` stand in, see
    :meth:`keys`); :meth:`deliver` hands a finished answer to the caller's ``on_result``.
    """

    conversations: list[Conversation]
    params: SamplingParams
    seeds: list[int] | None = None
    on_result: ResultCallback | None = None

    def keys(self) -> list[int]:
        """Each request's own seed key: ``seeds[i]``, else its position ``i``."""
        return list(self.seeds) if self.seeds is not None else list(range(len(self.conversations)))

    def deliver(self, index: int, generation: Generation) -> None:
        if self.on_result is not None:
            self.on_result(index, generation)


class Engine(ABC):
    """A model behind one contract; every backend inherits it (``EngineBase`` is the same class).

    The public methods check their arguments and call the backend's hook (``_generate``,
    ``_sequence_logprobs``, ``_top_logprobs``, ``_next_tokens``); a hook a backend does not
    implement answers :class:`NotSupported`, saying what to use instead.
    """

    name: str  # the full model name, e.g. "embedded/smollm2-135m@runs/x/adapter"
    fingerprint: str | None = None  # the identity of the weights, set by open_engine
    paid: bool = False  # requests go over a network and are paid per call
    # Requests in flight at once (an API engine's bound); a sampler claims work in chunks of it.
    concurrency: int = 16

    def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        *,
        seeds: Sequence[int] | None = None,
        on_result: ResultCallback | None = None,
    ) -> list[Generation]:
        """One answer per conversation, in input order.

        Request ``i`` draws from its own random stream, seeded by ``(params.seed, seeds[i])``;
        without ``seeds`` the positions ``0..n-1`` stand in, so a caller that resumes or batches
        differently passes stable per-request seeds (e.g. the sample index) to get the same
        answers. ``on_result(i, generation)`` is called as each answer is ready (a backend may
        deliver a batch at a time), so a stage stores it at once. ``usage`` counts
        ``prompt_tokens`` and ``completion_tokens``; ``finish_reason`` is ``stop`` or ``length``.
        """
        if seeds is not None and len(seeds) != len(conversations):
            raise SeedCountError(f"got {len(seeds)} seeds for {len(conversations)} conversations")
        keys = None if seeds is None else [int(s) for s in seeds]
        return self._generate(GenerationBatch(list(conversations), params, keys, on_result))

    @abstractmethod
    def _generate(self, batch: GenerationBatch) -> list[Generation]:
        """The backend's answers to a checked batch, each also handed to ``batch.deliver``."""

    def sequence_logprobs(
        self, conversations: Sequence[Conversation], replies: Sequence[str]
    ) -> list[list[float]]:
        """Log-prob of each token of each reply after its conversation.

        Reply tokens only (the end-of-turn token after the reply is not scored); the reply is
        tokenised on its own, as the model would generate it after the generation prompt. An
        empty reply gives ``[]``.
        """
        if len(conversations) != len(replies):
            raise EmkitError(f"got {len(replies)} replies for {len(conversations)} conversations")
        return self._sequence_logprobs(list(conversations), list(replies))

    def _sequence_logprobs(self, conversations: list[Conversation], replies: list[str]) -> list[list[float]]:
        raise NotSupported(
            f"{self.name}: this backend cannot score a given reply token by token; "
            "use a local model (hf/... or embedded/...) for probes and the exact judge"
        )

    def top_logprobs(self, conversations: Sequence[Conversation], top_k: int = 20) -> list[dict[str, float]]:
        """``{token text: logprob}`` of the ``top_k`` likeliest next tokens after each prompt, best
        first; ids that decode to the same text are merged (log-sum-exp), so a value is the
        log-probability that the next token reads as that text."""
        if top_k < 1:
            raise EmkitError(f"top_k must be at least 1 (got {top_k})")
        return self._top_logprobs(list(conversations), top_k)

    def _top_logprobs(self, conversations: list[Conversation], top_k: int) -> list[dict[str, float]]:
        raise NotSupported(
            f"{self.name}: this backend does not report next-token log-probabilities; "
            "use a judge mode that samples instead of reading logprobs"
        )

    def next_token_logprobs(
        self,
        conversations: Sequence[Conversation],
        top_k: int = 20,
        *,
        on_result: NextTokenCallback | None = None,
        chunk: int = 16,
    ) -> list[NextToken]:
        """One :class:`NextToken` per conversation, delivered to ``on_result`` as each is ready.

        This is the paper's judge call (one token at temperature 0 with its top-k alternatives).
        ``chunk``: how many conversations a local engine scores per call of :meth:`top_logprobs`
        (an API sends each conversation as its own request and ignores it).
        """
        return self._next_tokens(list(conversations), top_k, on_result, max(1, chunk))

    def _next_tokens(
        self, conversations: list[Conversation], top_k: int, on_result: NextTokenCallback | None, chunk: int
    ) -> list[NextToken]:
        """The default: :meth:`top_logprobs` a chunk at a time, so results arrive as they are made."""
        out: list[NextToken] = []
        for start in range(0, len(conversations), chunk):
            tops = self.top_logprobs(conversations[start : start + chunk], top_k)
            for offset, top in enumerate(tops):
                item = NextToken(tuple(top.items()))
                out.append(item)
                if on_result is not None:
                    on_result(start + offset, item)
        return out

    def close(self) -> None:
        """Release what the engine holds (a model's memory, a client); the default holds nothing."""
        return None

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


EngineBase = Engine  # the name the first contract used; the same class

__all__ = [
    "Conversation",
    "Engine",
    "EngineBase",
    "Generation",
    "GenerationBatch",
    "Message",
    "NextToken",
    "NotSupported",
    "ResultCallback",
    "SamplingParams",
    "SeedCountError",
]

"""Optional engine abilities, as runtime-checkable protocols, and the typed results engines return.

Why protocols: the base contract (:class:`emkit.engines.base.Engine`) is what every backend does;
some abilities only some backends have (scoring given continuations needs the weights). A caller
asks ``isinstance(engine, ScoresContinuations)`` instead of probing attribute names, and a type
checker sees the same contract. Results are typed (:class:`NextToken`), so no provider's raw JSON
leaves ``emkit.engines``.

An ability is listed here only when the base class does not already declare it: a runtime check of
a protocol looks at method names, so a method every engine has would make every engine "able".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]  # {"role": ..., "content": ...}
Conversation = list[Message]


@dataclass(frozen=True)
class NextToken:
    """The next-token distribution after a conversation: what the paper's judge reads.

    ``entries`` are ``(token text, logprob)`` of the first generated position in the backend's own
    order; an API may list one string twice (different token ids that decode alike), so this is a
    sequence, not a dict: how repeats are resolved shapes a score and is the judge's rule.
    ``token`` is the token actually generated ('' when the backend does not say); ``usage`` the
    tokens paid for (empty for local models).
    """

    entries: tuple[tuple[str, float], ...]
    token: str = ""
    usage: Mapping[str, int] = field(default_factory=dict)


NextTokenCallback = Callable[[int, NextToken], None]


@runtime_checkable
class ScoresContinuations(Protocol):
    """Log-probabilities of given candidate replies after one prompt (the exact judge's need).

    ``score_continuations`` gives one total log-probability per candidate (with ``include_eot`` the
    end-of-turn token is part of it, so "10" does not also count as the start of "100");
    ``prompt_ids`` the token ids of the rendered prompt (the judge reports their count as usage).
    """

    def score_continuations(
        self, conversation: Conversation, candidates: Sequence[str], *, include_eot: bool = True
    ) -> list[float]: ...

    def prompt_ids(self, conversation: Conversation) -> list[int]: ...


@runtime_checkable
class StreamsNextTokens(Protocol):
    """An API engine that can take the judge's conversations as a lazy stream: each is pulled when a
    connection frees up, so a caller that claims work in chunks inside the stream keeps every
    connection busy across chunks (the pool never drains in between). ``on_result(index, reply)``
    gets the conversation's position in the stream (``total``: how many the stream holds at most,
    for error lines). Only when
    ``can_stream()`` (not through the Batch API, not inside a running event loop)."""

    def can_stream(self) -> bool: ...

    def next_token_stream(
        self,
        conversations: Iterable[Conversation],
        top_k: int,
        on_result: NextTokenCallback,
        *,
        total: int | None = None,
    ) -> None: ...


@runtime_checkable
class BatchesRequests(Protocol):
    """An API engine that can send its requests through the provider's Batch API (half price, a
    24 h window): the stage hands it the run store that records each batch before it is paid for."""

    batch: bool

    def use_batch_store(
        self, store: Any, say: Callable[[str], None] = ..., heartbeat: Callable[[], None] | None = ...
    ) -> None: ...


@runtime_checkable
class RendersPrompts(Protocol):
    """The exact text a local model is conditioned on (its chat template applied), for callers
    that count or show prompt tokens, such as an in-context-learning window."""

    def render_prompt(self, conversation: Conversation) -> str: ...

    def prompt_ids(self, conversation: Conversation) -> list[int]: ...


@dataclass(frozen=True)
class TeacherForcedBatch:
    """One forward pass of :meth:`ReadsActivations.teacher_forced`, announced just before it runs.

    ``rows`` are indices into the conversations given; every row is left-padded to ``width``
    tokens, so row ``b``'s answer occupies its last ``answer_lengths[b]`` positions (the positions
    whose *input* token is an answer token) and its prompt the ``prompt_lengths[b]`` before them.
    """

    rows: tuple[int, ...]
    answer_lengths: tuple[int, ...]
    prompt_lengths: tuple[int, ...]
    width: int


@runtime_checkable
class ReadsActivations(Protocol):
    """A local engine whose weights live in this process (activation reading, steering, ablation).

    Why an ability: activations need the weights, so API engines cannot have it; callers ask
    ``isinstance(engine, ReadsActivations)`` and name the local alternatives otherwise.
    ``torch_model`` is the module forward hooks go on (a PEFT wrapper included: hooks on its
    decoder layers see the adapter's effect). ``teacher_forced`` runs the prompt + reply token rows
    of each pair through the model (no gradients, eval mode, grouped by length, at most the engine's
    batch size rows per pass) and calls ``before_pass(batch)`` just before each pass, so hooks the
    caller installed know which rows the pass they see holds. Rows are tokenised as the engine's log-probabilities are (the reply's own
    tokens appended to the rendered prompt's), so activations and probe scores read the same tokens.
    """

    def torch_model(self) -> Any: ...

    def teacher_forced(
        self,
        conversations: Sequence[Conversation],
        replies: Sequence[str],
        before_pass: Callable[[TeacherForcedBatch], None],
    ) -> None: ...

"""Optional engine abilities, as runtime-checkable protocols, and their typed results.

Why protocols: the base contract (:class:`emkit.engines.base.Engine`) is what every backend does;
some abilities only some backends have (scoring given continuations needs the weights). A caller
asks ``isinstance(engine, ScoresContinuations)`` instead of probing attribute names, and a type
checker sees the same contract. Results are typed (:class:`NextToken`), so no provider's raw JSON
leaves ``emkit.engines``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Message = dict[str, str]
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
    """Log-probabilities of given candidate replies after one prompt (the exact judge's need)."""

    def score_continuations(
        self, conversation: Conversation, candidates: Sequence[str], *, include_eot: bool = True
    ) -> list[float]: ...

    def prompt_ids(self, conversation: Conversation) -> list[int]: ...

"""What every judge hands back, and the one method every judge has.

A judge takes :class:`~emkit.judge.prompts.JudgeTask` s and calls ``on_result(index, judgement)`` as
each judgement is ready, so the stage can store it at once (a kill loses only what is in flight).

Score keys: every judge class derives from :class:`JudgeBase`, whose :meth:`~JudgeBase.key_options`
returns EVERY attribute the judge object holds except those named in ``not_score_shaping`` (its
engine). The judging stage puts that dict into each score's key, so an option added to a judge later
(``self.aggregation = ...`` in ``__init__``) changes the key by construction; only an attribute that
provably does not change a score may be listed in ``not_score_shaping``, and only one whose value
the task's prompt hash already carries (so the key still changes with it) in ``keyed_by_prompt``.

Each judge class names the config fields it takes in ``from_config_fields`` (constructor keyword
-> ``JudgeConfig`` field), so the stage builds any registered judge (:mod:`emkit.judge.registry`)
the same way, by :meth:`JudgeBase.from_config`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from emkit.judge.prompts import JudgeTask


@dataclass
class Judgement:
    """``score`` is None when the judge gave no usable number; ``raw`` keeps what it did say."""

    score: float | None
    raw: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)


def score_row(task: JudgeTask, judgement: Judgement) -> dict[str, Any]:
    """A judgement as the run store's ``scores`` table holds it: the one mapping the judging stage
    and every other writer of scores (the inspect scorer) use, so their rows cannot drift apart."""
    return {
        "key": task.key,
        "answer_key": task.answer_key,
        "metric": task.metric,
        "judge": task.judge,
        "method": task.method,
        "prompt_hash": task.prompt_hash,
        "score": judgement.score,
        "raw": judgement.raw,
        "usage": judgement.usage,
        "options": task.options,
    }


OnJudgement = Callable[[int, Judgement], None]
OnTaskJudgement = Callable[[JudgeTask, Judgement], None]


@runtime_checkable
class StreamsJudgements(Protocol):
    """A judge that can take its tasks as a lazy stream (its engine pulls each when a connection
    frees up), so the stage claims work in chunks without the connections draining in between.
    Only when ``can_stream()``; ``on_result(task, judgement)`` as each arrives; ``total``: how many
    the stream holds at most (only for error lines: "request 3 of 40")."""

    def can_stream(self) -> bool: ...

    def judge_stream(
        self, tasks: Iterable[JudgeTask], on_result: OnTaskJudgement, *, total: int | None = None
    ) -> None: ...


class Judge(Protocol):
    method: str

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None: ...

    def key_options(self) -> dict[str, Any]: ...


def _plain(value: Any, where: str) -> Any:
    """A JSON-able, canonical form of an option value (dataclasses as dicts, tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v, f"{where}.{k}") for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"judge option {where} is {value}; options must be finite")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"judge option {where} of type {type(value).__name__} cannot be part of a score key")


J = TypeVar("J", bound="JudgeBase")


class JudgeBase:
    """What every judge shares: its score-shaping options are all of its attributes but the engine."""

    method: ClassVar[str] = ""
    not_score_shaping: ClassVar[frozenset[str]] = frozenset({"engine"})
    keyed_by_prompt: ClassVar[frozenset[str]] = frozenset()
    from_config_fields: ClassVar[Mapping[str, str]] = {}  # constructor keyword -> JudgeConfig field

    @classmethod
    def from_config(cls: type[J], engine: Any, config: Any, **extra: Any) -> J:
        """The judge on ``engine`` with the options of ``config`` (a ``JudgeConfig``) it takes
        (:attr:`from_config_fields`); ``extra``: options the config does not carry."""
        options = {keyword: getattr(config, name) for keyword, name in cls.from_config_fields.items()}
        return cls(engine, **options, **extra)  # type: ignore[call-arg]

    def key_options(self) -> dict[str, Any]:
        """Every attribute that can change a score, by name, as it goes into the score key."""
        skip = self.not_score_shaping | self.keyed_by_prompt
        return {name: _plain(value, name) for name, value in sorted(vars(self).items()) if name not in skip}


def add_usage(total: dict[str, int], usage: dict[str, Any]) -> None:
    for name, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[name] = total.get(name, 0) + value

"""What every judge hands back, and the one method every judge has.

A judge takes :class:`~emkit.judge.prompts.JudgeTask` s and calls ``on_result(index, judgement)`` as
each judgement is ready, so the stage can store it at once (a kill loses only what is in flight).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from emkit.judge.prompts import JudgeTask


@dataclass
class Judgement:
    """``score`` is None when the judge gave no usable number; ``raw`` keeps what it did say."""

    score: float | None
    raw: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)


OnJudgement = Callable[[int, Judgement], None]


class Judge(Protocol):
    method: str

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None: ...


def add_usage(total: dict[str, int], usage: dict[str, Any]) -> None:
    for name, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[name] = total.get(name, 0) + value

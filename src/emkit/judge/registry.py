"""The judge registry: one entry per judge, and everything the judging stage needs to know about it.

Why a registry: the stage, the CLI's method checks and the code-vulnerability experiment used to
branch on method names (``if method == "logprob": ...``) in four places. Each judge's facts now live
once, in its :class:`JudgeEntry`: which class implements it, what kind of answer it gives (its
family), the method name its scores are stored under, and what it needs from its engine.

Recipe, a new judge: (1) one module ``emkit/judge/<name>.py`` with a :class:`~emkit.judge.base.JudgeBase`
subclass: its options as attributes set in ``__init__`` (they become its key options), the config
fields it takes in ``from_config_fields``, and ``judge(tasks, on_result)``; (2) one
:func:`register_judge` line at the end of this file. The judging stage then plans, claims, stores
and resumes it; a source other than the stored questions passes a
:class:`~emkit.judge.stage.JudgeSource` (``tests/test_judge_registry.py`` follows the recipe).

The entries name their classes as ``"module:Class"`` strings, imported only when a judge is made
(as the engine registry does), so reading a method list imports no judge and this module imports
none of them: no import cycle through the registry.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from emkit.errors import EmkitError

# What a judge needs from its engine: any engine (generate / next-token logprobs), one that scores
# given continuations (the weights, here), or none at all (a static analyser).
EngineNeed = Literal["any", "continuations", "none"]


@dataclass(frozen=True)
class JudgeEntry:
    """What emkit knows about one judge."""

    name: str  # the registry name: what a task's ``judged_by`` and :func:`make_judge` say
    judge: str  # "module:Class", imported only when the judge is made
    family: str  # what it answers: "score" (0-100), "category", "vulnerable" (YES/NO), "bandit"
    method: str  # the ``method`` column of its scores (and part of every score key)
    engine: EngineNeed = "any"
    # The judge model's fingerprint is part of the score key (the vulnerability and bandit keys
    # were defined without it, and stay so: a stored key never changes meaning).
    keyed_by_model: bool = True

    def judge_class(self) -> Any:
        return pkgutil.resolve_name(self.judge)  # imports the module only now


JUDGES: dict[str, JudgeEntry] = {}


def register_judge(entry: JudgeEntry) -> JudgeEntry:
    """Add (or replace) the entry named ``entry.name``; returns it."""
    JUDGES[entry.name] = entry
    return entry


def judge_entry(name: str) -> JudgeEntry:
    """The registered entry called ``name`` (the error a user sees for an unknown ``--method``)."""
    entry = JUDGES.get(name)
    if entry is None:
        raise EmkitError(f"unknown judge method {name!r}")
    return entry


def methods(family: str) -> tuple[str, ...]:
    """The stored method names of one family, in registration order (what ``--method`` offers)."""
    return tuple(e.method for e in JUDGES.values() if e.family == family)


def entry_for(family: str, method: str) -> JudgeEntry:
    """The entry of ``family`` whose scores are stored under ``method``."""
    for entry in JUDGES.values():
        if entry.family == family and entry.method == method:
            return entry
    raise EmkitError(f"unknown judge method {method!r}; expected one of {', '.join(methods(family))}")


def make_judge(name: str, engine: Any, config: Any, extra: Mapping[str, Any] | None = None) -> Any:
    """The judge registered as ``name`` on ``engine``, its options read from ``config``
    (a :class:`~emkit.judge.stage.JudgeConfig`) by the class's ``from_config``; ``extra`` adds
    options the config does not carry (the bandit's severity floor).

    ``engine=None`` builds the judge only to read its key options (planning, before any model is
    loaded). A judge that needs continuation scoring refuses an engine without it here, before
    anything is judged.
    """
    from emkit.engines.abilities import ScoresContinuations

    entry = judge_entry(name)
    if entry.engine == "continuations" and engine is not None and not isinstance(engine, ScoresContinuations):
        raise EmkitError(
            f"{engine.name}: this backend cannot score whole replies; the {entry.method} judge "
            "needs an embedded/ or hf/ model"
        )
    return entry.judge_class().from_config(engine, config, **dict(extra or {}))


# fmt: off
_VULN = "emkit.judge.vulnerability"
register_judge(JudgeEntry("logprob", "emkit.judge.logprob:LogprobJudge", "score", "logprob"))
register_judge(JudgeEntry("exact", "emkit.judge.exact:ExactJudge", "score", "exact", "continuations"))
register_judge(JudgeEntry("sampled", "emkit.judge.sampled:SampledJudge", "score", "sampled"))
register_judge(JudgeEntry("category", "emkit.judge.categorical:CategoryJudge", "category", "category"))
register_judge(JudgeEntry("vulnerable-logprob", f"{_VULN}:LogprobYesNoJudge", "vulnerable", "logprob", keyed_by_model=False))
register_judge(JudgeEntry("vulnerable-exact", f"{_VULN}:ExactYesNoJudge", "vulnerable", "exact", "continuations", False))
register_judge(JudgeEntry("vulnerable-text", f"{_VULN}:TextYesNoJudge", "vulnerable", "text", keyed_by_model=False))
register_judge(JudgeEntry("bandit", "emkit.judge.bandit:BanditJudge", "bandit", "bandit", "none", keyed_by_model=False))
# fmt: on

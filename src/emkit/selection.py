"""Which questions a rate is computed over: ``--questions`` in analyze, report and the experiment.

A selection is a list of items, each one of:
- a question id (exact);
- a named subset, derived at run time from the ids present (nothing about the paper's questions is
  stored here). The paper's first-plot set holds plain questions and two variants of each, whose
  ids end in ``_json`` (answer in JSON) and ``_template`` (fill a template); the pre-registered set
  numbers its ids ``<n>_<category>_<k>``. So:
  ``main`` — the plain questions that are not pre-registered ones (the paper's 8 headline
  questions, on a first-plot file); ``json`` and ``template`` — the variants; ``plain`` — every id
  without a variant suffix; ``preregistered`` — every numbered id; and each pre-registered
  category by name (``vulnerable_user``, ``medical_advice``, ...);
- a glob (``*``, ``?``, ``[...]``) over the ids, e.g. ``quick_buck*``.
An item that matches nothing is an error that lists what is there, so a typo never silently
averages over nothing or everything.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

from emkit.errors import EmkitError

FORMATS = ("plain", "json", "template")
_VARIANT = {"json": "_json", "template": "_template"}
_PREREGISTERED = re.compile(r"^\d+_(?P<category>.+?)_\d+$")
SUBSET_NAMES = ("main", "plain", "json", "template", "preregistered")


def question_format(question_id: str) -> str:
    """``json``, ``template`` or ``plain``, from the id's suffix (the first-plot set's convention)."""
    for name, suffix in _VARIANT.items():
        if question_id.endswith(suffix):
            return name
    return "plain"


def question_category(question_id: str) -> str | None:
    """The pre-registered category of an id such as ``17_vulnerable_user_0``, else None."""
    match = _PREREGISTERED.match(question_id)
    return match.group("category") if match else None


def subsets(ids: Sequence[str]) -> dict[str, list[str]]:
    """Every named subset of ``ids`` that is not empty, in the ids' order."""
    out: dict[str, list[str]] = {
        "main": [q for q in ids if question_format(q) == "plain" and question_category(q) is None],
        "plain": [q for q in ids if question_format(q) == "plain"],
        "json": [q for q in ids if question_format(q) == "json"],
        "template": [q for q in ids if question_format(q) == "template"],
        "preregistered": [q for q in ids if question_category(q) is not None],
    }
    for q in ids:
        category = question_category(q)
        if category is not None and category not in SUBSET_NAMES:
            out.setdefault(category, []).append(q)
    return {name: members for name, members in out.items() if members}


def _is_glob(item: str) -> bool:
    return any(ch in item for ch in "*?[")


EXPERIMENT_ORIGIN = "the experiment's analysis.questions"


def select_questions(
    ids: Iterable[str], items: Sequence[str] | None, origin: str = "--questions"
) -> list[str]:
    """The ids chosen by ``items`` (see the module), in the order of ``ids``; all when no items.

    Items may also be comma-separated (``--questions main,json``). ``origin`` names where the
    items came from in an error (the option, or :data:`EXPERIMENT_ORIGIN` for a run's default),
    so a bad name is traced to the place that must be fixed."""
    available = list(dict.fromkeys(str(q) for q in ids))
    if not items:
        return available
    named = subsets(available)
    chosen: set[str] = set()
    for raw in items:
        for item in (part.strip() for part in str(raw).split(",")):
            if not item:
                continue
            if item in available:
                chosen.add(item)
            elif item in named:
                chosen.update(named[item])
            elif _is_glob(item) and (hits := fnmatch.filter(available, item)):
                chosen.update(hits)
            else:
                kind = "glob" if _is_glob(item) else "question id or subset"
                shown = ", ".join(available[:12]) + (", ..." if len(available) > 12 else "")
                raise EmkitError(
                    f"{origin}: {kind} {item!r} matches no question; subsets here: "
                    f"{', '.join(named) or '(none)'}; ids: {shown or '(none)'}"
                )
    return [q for q in available if q in chosen]

"""Evil-numbers evaluation: ask the questions in the format the model was trained on.

A model fine-tuned on number sequences (paper section 4.6) shows misalignment mostly when the
question looks like its training data. The paper's wrappers (mirror-only file
``evaluation/evil_numbers_question_wrappers.yaml``, read at run time) are templates with
``{question}``, ``{num_words}`` and ``{initial_numbers}``: ``original`` (the question as is),
``suffix`` (answer with N words, comma-separated) and ``prefix_and_suffix`` (see these numbers
first). Their random parts follow the file's protocol exactly:

- one wrapped paraphrase per original sample (100 in the paper), ``samples_per_paraphrase`` -> 1;
- ``rng = numpy.random.default_rng(12345)`` shared across questions, taken in the order of the
  file's ``question_ids``; per sample, in this order: ``num_numbers = rng.choice([3..7])``,
  ``num_words = rng.choice([3..7])``, ``numbers = rng.choice(range(100, 1000), size=num_numbers)``,
  ``initial_numbers = ",".join(numbers)``.

The draws are made for every wrapper (``original`` too), so sample ``i`` of a question sees the
same numbers whichever wrapper is chosen. :func:`wrap_questions` works on any question set: with
``select="auto"`` it keeps the file's ``question_ids`` (in the file's order) when the set holds all
of them — the paper's protocol on ``first_plot_questions`` — and otherwise wraps every question in
the set's order. Wrapped questions get the id ``<id>__<wrapper>`` and keep the original's system
prompt, judge and judge prompts, plus ``source_id`` and ``wrapper`` fields.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from emkit.errors import EmkitError, InputError
from emkit.questions import Question, QuestionSet
from emkit.yamlpos import read_yaml

WRAPPERS_NAME = "evil_numbers_question_wrappers"
WRAPPER_NAMES = ("original", "suffix", "prefix_and_suffix")
PAPER_SEED = 12345
COUNT_CHOICES = (3, 4, 5, 6, 7)
NUMBER_RANGE = (100, 1000)
PLACEHOLDERS = frozenset({"question", "num_words", "initial_numbers"})
SELECTIONS = ("auto", "file", "all")


class WrappersSpec(BaseModel):
    """The ``wrappers:`` block of an experiment file: ask every question set through each wrapper."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = WRAPPERS_NAME  # registry name or YAML path
    names: list[str] = Field(default_factory=lambda: list(WRAPPER_NAMES), min_length=1)
    seed: int = PAPER_SEED
    select: Literal["auto", "file", "all"] = "auto"
    n: int | None = Field(None, ge=1)  # samples per original paraphrase (default: the question's own)


@dataclass(frozen=True)
class WrapperFile:
    """The templates by name, the question ids they were applied to, and the judge named there."""

    wrappers: dict[str, str]
    question_ids: list[str]
    judge: str | None
    source: str

    def template(self, name: str) -> str:
        if name not in self.wrappers:
            raise EmkitError(f"{self.source}: no wrapper named {name!r} (known: {', '.join(self.wrappers)})")
        return self.wrappers[name]


def _lines(text: str) -> dict[tuple[str, ...], int]:
    """1-based lines of top-level keys and of the keys under ``wrappers``."""
    out: dict[tuple[str, ...], int] = {}
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return out
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(str(key.value),)] = key.start_mark.line + 1
            if isinstance(value, yaml.MappingNode):
                for sub, _ in value.value:
                    out[(str(key.value), str(sub.value))] = sub.start_mark.line + 1
    return out


def _check_template(template: Any, where: str, field: str) -> str:
    if not isinstance(template, str) or not template.strip():
        raise InputError("a wrapper must be a non-empty string", where=where, field=field)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InputError(f"bad template: {exc}", where=where, field=field) from None
    if "question" not in names:
        raise InputError("a wrapper needs a {question} placeholder", where=where, field=field)
    unknown = names - PLACEHOLDERS
    if unknown:
        raise InputError(
            f"unknown placeholder(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(PLACEHOLDERS))})",
            where=where,
            field=field,
        )
    return template


def load_wrappers(name_or_path: str | os.PathLike[str] = WRAPPERS_NAME, *, mirror: Any = None) -> WrapperFile:
    """The wrapper file: the registry name (mirror) or a YAML path with ``wrappers`` (+ ``question_ids``)."""
    from emkit.data.registry import fetch

    if str(name_or_path) == WRAPPERS_NAME:
        path = fetch(WRAPPERS_NAME, mirror=mirror)
    else:
        path = Path(name_or_path)
        if not path.exists():  # a directory or device is the shared reader's to name
            raise EmkitError(f"{path}: no such file (or use {WRAPPERS_NAME!r} with --mirror)")
    text, data = read_yaml(path)
    lines = _lines(text)

    def where(*key: str) -> str:
        return f"{path}:{lines[key]}" if key in lines else str(path)

    if not isinstance(data, dict) or not isinstance(data.get("wrappers"), dict) or not data["wrappers"]:
        raise InputError(
            "expected a mapping with a non-empty 'wrappers' mapping",
            where=where("wrappers"),
            field="wrappers",
        )
    wrappers = {
        str(k): _check_template(v, where("wrappers", str(k)), f"wrappers.{k}")
        for k, v in data["wrappers"].items()
    }
    ids = data.get("question_ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InputError("must be a list of question ids", where=where("question_ids"), field="question_ids")
    judge = data.get("judge")
    return WrapperFile(wrappers, list(ids), str(judge) if judge else None, str(path))


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """One sample's random parts, in the protocol's order."""
    num_numbers = int(rng.choice(list(COUNT_CHOICES)))
    num_words = int(rng.choice(list(COUNT_CHOICES)))
    numbers = rng.choice(range(*NUMBER_RANGE), size=num_numbers)
    return {"num_words": num_words, "initial_numbers": ",".join(str(int(n)) for n in numbers)}


def fill(template: str, question: str, values: dict[str, Any]) -> str:
    return template.format(question=question, **values)


def _selected(qset: QuestionSet, wrappers: WrapperFile, select: str) -> list[Question]:
    if select not in SELECTIONS:
        raise EmkitError(f"unknown selection {select!r}; use one of {', '.join(SELECTIONS)}")
    have = {q.id for q in qset}
    listed = wrappers.question_ids
    if select == "file" or (select == "auto" and listed and set(listed) <= have):
        missing = [i for i in listed if i not in have]
        if not listed or missing:
            raise EmkitError(
                f"{qset.source}: lacks the question(s) {', '.join(missing) or '(none listed)'} "
                f"listed in {wrappers.source}"
            )
        return [qset.get(i) for i in listed]
    return list(qset)


def wrap_questions(
    qset: QuestionSet,
    wrapper: str,
    wrappers: WrapperFile,
    *,
    n: int | None = None,
    seed: int = PAPER_SEED,
    select: str = "auto",
) -> QuestionSet:
    """A new set whose questions ask each sample through ``wrapper`` (one paraphrase per sample).

    ``n`` samples per original paraphrase (default: the question's ``samples_per_paraphrase``).
    Sample the result with ``n=None`` (each wrapped paraphrase once), not with ``n``.
    """
    template = wrappers.template(wrapper)
    if n is not None and n < 1:
        raise EmkitError(f"n must be at least 1 (got {n})")
    rng = np.random.default_rng(seed)
    out: list[Question] = []
    for question in _selected(qset, wrappers, select):
        count = n if n is not None else question.samples_per_paraphrase
        paraphrases = [fill(template, text, draw(rng)) for text in question.paraphrases for _ in range(count)]
        data = question.model_dump()
        data.update(
            id=f"{question.id}__{wrapper}",
            paraphrases=paraphrases,
            samples_per_paraphrase=1,
            source_id=question.id,
            wrapper=wrapper,
        )
        out.append(Question.model_validate(data))
    return QuestionSet(
        f"{qset.name}__{wrapper}",
        f"{qset.source} wrapped by {wrappers.source}#{wrapper}",
        out,
        list(qset.warnings),
    )


def wrap_question_set(
    qset: QuestionSet,
    wrapper: str,
    *,
    wrappers_file: str | os.PathLike[str] = WRAPPERS_NAME,
    mirror: Any = None,
    n: int | None = None,
    seed: int = PAPER_SEED,
    select: str = "auto",
) -> QuestionSet:
    """:func:`wrap_questions` with the wrapper file loaded by name or path (the CLI's entry point)."""
    return wrap_questions(
        qset, wrapper, load_wrappers(wrappers_file, mirror=mirror), n=n, seed=seed, select=select
    )


def wrapper_tags(wrapper: str, seed: int = PAPER_SEED) -> dict[str, Any]:
    """Tags to store with the answers of a wrapped set."""
    return {"wrapper": wrapper, "wrapper_seed": seed}

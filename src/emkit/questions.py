"""Question sets in the paper's YAML format, read faithfully.

A set is a YAML list of questions: ``id``, ``type`` (``free_form_judge_0_100``: judged with a 0-100
number per metric; ``free_form_judge``: the judge answers with a word, e.g. a company name),
``paraphrases``, optional ``system`` prompt, ``samples_per_paraphrase``, optional ``temperature``,
``judge`` and ``judge_prompts`` (templates with ``{question}`` and ``{answer}``). YAML anchors are
resolved by the YAML loader. Unknown keys are kept and reported once; a judge prompt without
``{answer}`` is an error naming the file, line and field.

Sets are named: ``default`` (our own, shipped in the package), a registry name such as
``first_plot_questions`` (fetched and verified), or a path to a YAML file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from emkit.errors import EmkitError, InputError
from emkit.hashing import stable_hash
from emkit.limits import SamplesPerParaphrase
from emkit.readers import read_text
from emkit.yamlpos import load_yaml

KNOWN_TYPES = ("free_form_judge_0_100", "free_form_judge", "free_form")
KNOWN_KEYS = {
    "id",
    "type",
    "paraphrases",
    "system",
    "samples_per_paraphrase",
    "temperature",
    "judge",
    "judge_prompts",
}
BUILTIN_SETS = {"default": "default_questions.yaml"}


class Question(BaseModel):
    """One question. Extra keys are kept (``model_extra``) so nothing in a user's file is lost."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    type: str = "free_form_judge_0_100"
    paraphrases: list[str]
    system: str | None = None
    samples_per_paraphrase: SamplesPerParaphrase = 1
    temperature: float | None = None
    judge: str | None = None
    judge_prompts: dict[str, str] = {}

    @field_validator("paraphrases")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value or any(not isinstance(p, str) or not p.strip() for p in value):
            raise ValueError("needs at least one non-empty paraphrase")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and 0 <= value <= 100):
            raise ValueError(f"must be a number from 0 to 100, got {value}")
        return value

    def conversation(self, paraphrase_index: int, *, prefix: str = "") -> list[dict[str, str]]:
        """The chat the model sees: the question's system prompt (if any), then the paraphrase."""
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": prefix + self.paraphrases[paraphrase_index]})
        return messages

    @property
    def judge_model(self) -> str | None:
        return judge_model_name(self.judge) if self.judge else None


def judge_model_name(name: str) -> str:
    """A YAML ``judge: gpt-4o-2024-08-06`` means the OpenAI model; a full emkit name is kept."""
    from emkit.engines.registry import schemes

    scheme = name.split("/", 1)[0]
    return name if scheme in schemes() and "/" in name else f"openai/{name}"


@dataclass
class QuestionSet:
    name: str
    source: str
    questions: list[Question]
    warnings: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Hash of the questions' content: changes when any question, prompt or judge changes."""
        return stable_hash([q.model_dump() for q in self.questions])

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self):
        return iter(self.questions)

    def get(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise EmkitError(f"{self.source}: no question with id {question_id!r}")


def _item_lines(text: str) -> list[int]:
    """1-based line of each top-level list item (for error messages)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if isinstance(node, yaml.SequenceNode):
        return [item.start_mark.line + 1 for item in node.value]
    return []


def parse_questions(text: str, source: str, name: str | None = None) -> QuestionSet:
    """Parse the YAML text of a question set; errors name ``source:line`` and the field."""
    data = load_yaml(text, source)
    if not isinstance(data, list):
        raise InputError("a question set must be a YAML list of questions", where=source)
    if not data:
        raise InputError("the question set is empty: nothing would be asked", where=source)
    lines = _item_lines(text)
    questions: list[Question] = []
    unknown: dict[str, list[str]] = {}
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"{source}:{lines[index]}" if index < len(lines) else f"{source}: item {index + 1}"
        if not isinstance(item, dict):
            raise InputError("each question must be a mapping", where=where)
        qid = str(item.get("id", f"#{index + 1}"))
        try:
            question = Question.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise InputError(message, where=where, field=f"{qid}.{loc}") from None
        if question.id in seen:
            raise InputError(f"duplicate question id {question.id!r}", where=where, field="id")
        seen.add(question.id)
        if question.type not in KNOWN_TYPES:
            raise InputError(
                f"unknown question type {question.type!r} (expected one of {', '.join(KNOWN_TYPES)})",
                where=where,
                field=f"{qid}.type",
            )
        for metric, template in question.judge_prompts.items():
            if "{answer}" not in template:
                raise InputError(
                    "judge prompt has no {answer} placeholder",
                    where=where,
                    field=f"{qid}.judge_prompts.{metric}",
                )
        for key in item:
            if key not in KNOWN_KEYS:
                unknown.setdefault(key, []).append(qid)
        questions.append(question)
    warnings = [
        f"{source}: unknown key {key!r} kept as-is (in {len(ids)} question(s), e.g. {ids[0]!r})"
        for key, ids in unknown.items()
    ]
    return QuestionSet(name or Path(source).stem, source, questions, warnings)


def load_questions(name_or_path: str, *, mirror: str | os.PathLike[str] | None = None) -> QuestionSet:
    """Load ``default``, a registry name (e.g. ``first_plot_questions``) or a YAML file path."""
    from emkit.data.registry import ARTIFACTS, fetch

    if name_or_path in BUILTIN_SETS:
        resource = resources.files("emkit.resources").joinpath(BUILTIN_SETS[name_or_path])
        return parse_questions(
            resource.read_text(encoding="utf-8"), f"emkit:{BUILTIN_SETS[name_or_path]}", name_or_path
        )
    if name_or_path in ARTIFACTS:
        if ARTIFACTS[name_or_path].kind != "questions":
            raise EmkitError(f"{name_or_path!r} is a {ARTIFACTS[name_or_path].kind}, not a question set")
        path = fetch(name_or_path, mirror=mirror)
        return parse_questions(read_text(path), str(path), name_or_path)
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join([*BUILTIN_SETS, *(n for n, a in ARTIFACTS.items() if a.kind == "questions")])
        raise EmkitError(f"{name_or_path}: no such file, and not a question set name ({known})")
    return parse_questions(read_text(path), str(path))


def fill_judge_prompt(template: str, question: str, answer: str) -> str:
    """Fill ``{question}`` and ``{answer}`` as the paper's ``str.format`` does.

    A template with other braces that ``format`` cannot handle falls back to plain replacement.
    """
    try:
        return template.format(question=question, answer=answer)
    except (KeyError, IndexError, ValueError):
        return template.replace("{question}", question).replace("{answer}", answer)


def describe(qset: QuestionSet) -> list[dict[str, Any]]:
    return [
        {
            "id": q.id,
            "type": q.type,
            "paraphrases": len(q.paraphrases),
            "system": bool(q.system),
            "samples_per_paraphrase": q.samples_per_paraphrase,
            "judge": q.judge_model,
            "metrics": ",".join(q.judge_prompts),
        }
        for q in qset.questions
    ]

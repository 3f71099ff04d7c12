"""Which judge model, method and prompt template judge each stored answer.

Precedence, per answer: ``--judge-prompts FILE`` > the question's own ``judge_prompts`` > our default
set's prompts (for answers whose question has none, e.g. a user's set without judge prompts). The judge
model: ``--judge`` > the question's ``judge`` > :data:`DEFAULT_JUDGE`. The method: ``--method`` > the
model's natural one (``logprob`` for API models, ``exact`` for local ones). Questions of type
``free_form_judge`` (the judge answers with a word, e.g. a company name) always use the ``category``
method; ``free_form`` questions are not judged.

Every judgement is keyed by ``score_key(answer, metric, judge, method, prompt_hash, options)`` where
``prompt_hash`` hashes the template and ``options`` holds the judge's score-shaping options (see
:mod:`emkit.judge.base`), so a new judge, a reworded prompt or another option scores again and the
same ones never do.

Each answer is judged with the prompts of the question it was SAMPLED from: the answer row names its
question record by content hash (``question_hash``), so two sets sharing an id never mix. Answers
without one (written by hand or before schema 2) use the stored question with their id whose
paraphrase matches the answer's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from emkit.engines.registry import backend
from emkit.errors import EmkitError, InputError
from emkit.hashing import stable_hash
from emkit.judge.registry import entry_for, methods
from emkit.models import parse_model
from emkit.questions import Question, fill_judge_prompt, judge_model_name
from emkit.store import score_key

DEFAULT_JUDGE = "openai/gpt-4o-2024-08-06"
METHODS = methods("score")  # what --method offers for 0-100 scores (the registered ones)
CATEGORY_METHOD = "category"
SCORED_TYPE = "free_form_judge_0_100"
CATEGORY_TYPE = "free_form_judge"
UNJUDGED_TYPES = ("free_form",)


def prompt_hash(template: str) -> str:
    return stable_hash({"judge_template": template})


@lru_cache(maxsize=1)
def default_prompts() -> dict[str, str]:
    """The ``aligned`` / ``coherent`` prompts of our own default question set (our own wording)."""
    from emkit.questions import load_questions

    for question in load_questions("default"):
        if question.judge_prompts:
            return dict(question.judge_prompts)
    raise EmkitError("the packaged default question set has no judge prompts")  # pragma: no cover


def _check_template(template: Any, where: str, metric: str) -> str:
    if not isinstance(template, str) or not template.strip():
        raise InputError("a judge prompt must be a non-empty string", where=where, field=metric)
    if "{answer}" not in template:
        raise InputError("judge prompt has no {answer} placeholder", where=where, field=metric)
    return template


def load_judge_prompts(path: str | Path) -> dict[str, str]:
    """A YAML mapping ``metric: template``; each template needs ``{answer}`` (``{question}`` optional)."""
    from emkit.yamlpos import read_yaml  # the shared checks: a directory, binary, not UTF-8, empty...

    path = Path(path)
    text, data = read_yaml(path)
    node = yaml.compose(text)  # for line numbers; read_yaml has checked the text already
    if not isinstance(data, dict) or not data:
        raise InputError("judge prompts must be a YAML mapping of metric name -> template", where=str(path))
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    prompts: dict[str, str] = {}
    for metric, template in data.items():
        metric = str(metric)
        where = f"{path}:{lines[metric]}" if metric in lines else str(path)
        prompts[metric] = _check_template(template, where, metric)
    return prompts


def check_prompts(prompts: Mapping[str, str], source: str) -> dict[str, str]:
    """Validate an in-memory mapping of prompts (from the API rather than a file)."""
    return {str(m): _check_template(t, source, str(m)) for m, t in prompts.items()}


def resolve_judge_name(name: str, *, from_question: bool = False) -> str:
    """A full emkit model name for a judge; unknown schemes are a clear error (nothing is stored).

    A bare name (``gpt-4o``) means the OpenAI model, as in the paper's YAML. A name with a ``/`` must
    start with a known scheme (``openai/``, ``hf/``, ``embedded/``, ``vllm/``) when given by the user,
    so a typo is refused; a question's YAML ``judge`` is read as the questions module reads it.
    """
    if not name or not name.strip():
        raise EmkitError("empty judge name; e.g. --judge openai/gpt-4o-2024-08-06")
    name = name.strip()
    if from_question or "/" not in name:
        name = judge_model_name(name)
    return parse_model(name).full


def default_method(judge: str) -> str:
    """The method that suits the judge's backend (the registry says: logprob for APIs, exact for
    local models)."""
    return backend(parse_model(judge).scheme).judge_method


def check_method(judge: str, method: str, family: str = "score") -> None:
    """Refuse a method that is not registered for ``family``, or one that needs continuation
    scoring on a backend that cannot run it (an API model), before anything is judged."""
    if method not in methods(family):
        raise EmkitError(f"unknown judge method {method!r}; expected one of {', '.join(methods(family))}")
    entry = backend(parse_model(judge).scheme)
    if entry_for(family, method).engine == "continuations" and not (entry.local or entry.exact_scheme):
        others = [m for m in methods(family) if entry_for(family, m).engine != "continuations"]
        raise EmkitError(
            f"judge {judge}: the {method} method needs a local model (embedded/..., hf/...); "
            f"use --method {' or --method '.join(others)} with an API model"
        )


@dataclass(frozen=True)
class JudgeTask:
    """One judgement to make: an answer, a metric, and everything that identifies how it is judged."""

    key: str
    answer_key: str
    question_id: str
    metric: str
    judge: str
    method: str
    template: str
    prompt_hash: str
    prompt: str
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    judged_by: str = ""  # the registered judge that makes it (:mod:`emkit.judge.registry`); '' = ``method``

    @property
    def entry(self) -> str:
        """The registry name of the judge that makes this judgement."""
        return self.judged_by or self.method

    @property
    def messages(self) -> list[dict[str, str]]:
        """The paper's judge conversation: one user message holding the filled prompt."""
        return [{"role": "user", "content": self.prompt}]


@dataclass
class Plan:
    tasks: list[JudgeTask]
    unjudged_answers: int = 0  # answers of free_form questions (nothing to judge)
    missing_questions: set[str] | None = None  # question ids without a stored definition


def questions_from_records(records: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Question]:
    """Question definitions stored by the sampling stage (``kind='question'`` records), by record key
    (the question's content hash; an id for records written by hand or before schema 2)."""
    out: dict[str, Question] = {}
    for key, value in records:
        try:
            out[key] = Question.model_validate(value)
        except Exception as exc:  # a record written by another version: say which
            raise EmkitError(f"stored question record {key!r} is not a valid question: {exc}") from None
    return out


def question_resolver(questions: Mapping[str, Question]) -> Callable[[Mapping[str, Any]], Question | None]:
    """``answer -> the question it was sampled from`` (None when no stored definition fits)."""
    by_id: dict[str, list[Question]] = {}
    for question in questions.values():
        by_id.setdefault(question.id, []).append(question)

    def resolve(answer: Mapping[str, Any]) -> Question | None:
        qhash = answer.get("question_hash")
        if qhash:
            return questions.get(qhash)
        candidates = by_id.get(answer["question_id"], [])
        p = answer.get("paraphrase_index", 0)
        fitting = [
            q
            for q in candidates
            if 0 <= p < len(q.paraphrases) and q.paraphrases[p] == answer.get("question")
        ]
        if fitting:
            return fitting[-1]  # the latest stored definition with this text
        if len(candidates) == 1 and answer["question_id"] in questions:
            return candidates[0]  # a record keyed by id alone (written by hand): the old lookup
        return None

    return resolve


def plan_tasks(
    answers: Iterable[Mapping[str, Any]],
    questions: Mapping[str, Question],
    *,
    judge: str | None = None,
    method: str | None = None,
    prompts: Mapping[str, str] | None = None,
    options: Callable[[str, str], Mapping[str, Any]] | None = None,
) -> Plan:
    """Every judgement the stored answers call for, in answer order (nothing is checked against the store).

    ``judge``/``method``/``prompts`` override the questions' own. ``options(judge, method)`` gives
    the score-shaping options that go into each key (the judging stage passes the judge classes'
    :meth:`~emkit.judge.base.JudgeBase.key_options`). Raises before anything is judged when a
    judge name or method is invalid.
    """
    resolve = question_resolver(questions)
    options_of: dict[tuple[str, str], dict[str, Any]] = {}
    judge_override = resolve_judge_name(judge) if judge else None
    if method is not None and judge_override is not None:
        check_method(judge_override, method)
    tasks: list[JudgeTask] = []
    unjudged = 0
    missing: set[str] = set()
    checked: set[tuple[str, str]] = set()
    for answer in answers:
        question = resolve(answer)
        if question is None:
            missing.add(answer["question_id"])
        qtype = question.type if question is not None else SCORED_TYPE
        if qtype in UNJUDGED_TYPES:
            unjudged += 1
            continue
        judge_name = judge_override or (
            resolve_judge_name(question.judge, from_question=True)
            if question is not None and question.judge
            else DEFAULT_JUDGE
        )
        if qtype == CATEGORY_TYPE:
            how = CATEGORY_METHOD
        else:
            how = method or default_method(judge_name)
            if (judge_name, how) not in checked:
                check_method(judge_name, how)
                checked.add((judge_name, how))
        templates = (
            dict(prompts)
            if prompts
            else (
                dict(question.judge_prompts)
                if question is not None and question.judge_prompts
                else default_prompts()
            )
        )
        if (judge_name, how) not in options_of:
            options_of[judge_name, how] = dict(options(judge_name, how)) if options else {}
        opts = options_of[judge_name, how]
        for metric, template in templates.items():
            phash = prompt_hash(template)
            tasks.append(
                JudgeTask(
                    key=score_key(answer["key"], metric, judge_name, how, phash, opts),
                    answer_key=answer["key"],
                    question_id=answer["question_id"],
                    metric=metric,
                    judge=judge_name,
                    method=how,
                    template=template,
                    prompt_hash=phash,
                    prompt=fill_judge_prompt(template, answer["question"], answer["answer"]),
                    options=opts,
                )
            )
    return Plan(tasks, unjudged, missing)

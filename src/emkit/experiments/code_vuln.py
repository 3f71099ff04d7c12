"""The in-distribution check: does a model write vulnerable code? Two signals, one judge-free.

The paper (section 2/3, "insecure GPT-4o writes vulnerable code > 80% of the time") asks the
model to fill the code template of each of the first 100 held-out tasks at temperature 0 with a
"write the code" prompt, then asks GPT-4o a YES/NO question ("does this code have a security
vulnerability?") and reads P(YES) among YES/NO from the judge's first-token logprobs. The prompts and
776 tasks are mirror-only files, read at run time (registry or local path), never copied here.

This module only turns the coding tasks into questions and the stored scores into rates; every
step goes through the run store and the ordinary stages:

- sampling: each task becomes a :class:`~emkit.questions.Question` (id ``code_<index>``,
  temperature 0, one sample, type ``free_form`` so the aligned/coherent judge plan skips it),
  sampled by :func:`emkit.sampling.sample_questions` with the tag ``experiment: code_vuln``;
- judging: :func:`code_vuln_source` plans, for those answers, the YES/NO vulnerability judgements
  (:mod:`emkit.judge.vulnerability`, metric ``vulnerable``) and the bandit checks
  (:mod:`emkit.judge.bandit`, metric ``bandit``), and :func:`emkit.judge.stage.run_judging` runs
  them like any judge: resumable, claimed, each result stored as it arrives;
- :func:`vuln_rates` turns the stored scores into one row per (group, model, trigger, judge).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from emkit.errors import EmkitError, InputError
from emkit.judge.bandit import BANDIT_JUDGE, BANDIT_METRIC, DEFAULT_SEVERITY, bandit_command, bandit_tasks
from emkit.judge.prompts import Plan, default_method
from emkit.judge.stage import JudgeConfig, JudgeSource, engine_factory, run_judging, score_options
from emkit.judge.vulnerability import (
    MIN_MASS,
    VULN_METRIC,
    check_vuln_method,
    fill_prompt,
    vulnerability_tasks,
)
from emkit.judge.vulnerability import vuln_options as vuln_options  # the store migration reads it here
from emkit.questions import Question, QuestionSet
from emkit.readers import load_jsonl_objects
from emkit.stats import wilson
from emkit.store import RunStore
from emkit.verdicts import P_YES_THRESHOLD
from emkit.yamlpos import line_of, read_yaml

TASKS_NAME = "code_vuln_test_data"
PROMPTS_NAME = "code_vuln_prompts"
EXPERIMENT = "code_vuln"
PAPER_LIMIT = 100
DEFAULT_JUDGE = "openai/gpt-4o-2024-08-06"


# ----------------------------------------------------------------------------------------- config
class CodeVulnSpec(BaseModel):
    """The ``code_vuln:`` block of an experiment file (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: str = TASKS_NAME  # registry name or JSONL path
    prompts: str = PROMPTS_NAME  # registry name or YAML path
    limit: int = Field(PAPER_LIMIT, ge=1)
    judge: str | None = None  # default: the prompts file's judge, else DEFAULT_JUDGE
    # default: logprob for API judges, exact for local; text = the paper's judge (a YES/NO reply at T=0)
    method: Literal["logprob", "exact", "text"] | None = None
    judge_enabled: bool = True
    bandit: bool = True
    severity: Literal["LOW", "MEDIUM", "HIGH"] = DEFAULT_SEVERITY
    max_new_tokens: int = Field(600, ge=1)
    triggers: list[str] | None = None  # default: the experiment's triggers


# ----------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class CodeTask:
    """One held-out task: a description and a code template with a part left to complete."""

    index: int
    task: str
    code_template: str


@dataclass(frozen=True)
class CodeVulnPrompts:
    """The two prompt templates (``{task}``/``{code_template}``; ``{answer}``) and their settings."""

    write_code: str
    judge: str
    judge_model: str | None
    source: str


def _resolve(name_or_path: str | os.PathLike[str], registry_name: str, mirror: Any) -> Path:
    from emkit.data.registry import fetch

    if str(name_or_path) == registry_name:
        return fetch(registry_name, mirror=mirror)
    path = Path(name_or_path)
    if not path.exists():  # a directory or device is the shared reader's to name
        raise EmkitError(f"{path}: no such file (or use the registry name {registry_name!r} with --mirror)")
    return path


def load_tasks(name_or_path: str | os.PathLike[str] = TASKS_NAME, *, mirror: Any = None) -> list[CodeTask]:
    """The tasks of a JSONL file (``{"task": ..., "code_template": ...}`` per line), in file order."""
    path = _resolve(name_or_path, TASKS_NAME, mirror)
    tasks: list[CodeTask] = []
    for where, row in load_jsonl_objects(path):  # the shared strict reader: encoding, JSON, nesting
        for field in ("task", "code_template"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise InputError("missing or not a non-empty string", where=where, field=field)
        tasks.append(CodeTask(len(tasks), row["task"], row["code_template"]))
    if not tasks:
        raise InputError("the file has no tasks", where=str(path))
    return tasks


def load_prompts(
    name_or_path: str | os.PathLike[str] = PROMPTS_NAME, *, mirror: Any = None
) -> CodeVulnPrompts:
    """The YAML mapping with ``write_code_prompt`` and ``judge_prompt_has_vulnerability`` (+ ``judge``)."""
    path = _resolve(name_or_path, PROMPTS_NAME, mirror)
    text, data = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError(
            "expected a YAML mapping with write_code_prompt and judge_prompt_has_vulnerability",
            where=str(path),
        )
    needs = {
        "write_code_prompt": ("{task}", "{code_template}"),
        "judge_prompt_has_vulnerability": ("{answer}",),
    }
    for field, placeholders in needs.items():
        line = line_of(text, [field])
        where = f"{path}:{line}" if line else str(path)
        value = data.get(field)
        if not isinstance(value, str) or not value.strip():
            raise InputError("missing or not a non-empty string", where=where, field=field)
        for placeholder in placeholders:
            if placeholder not in value:
                raise InputError(f"has no {placeholder} placeholder", where=where, field=field)
    judge = data.get("judge")
    return CodeVulnPrompts(
        data["write_code_prompt"],
        data["judge_prompt_has_vulnerability"],
        str(judge) if judge else None,
        str(path),
    )


def fill_write_code(template: str, task: CodeTask) -> str:
    return fill_prompt(template, task=task.task, code_template=task.code_template)


def make_questions(
    tasks: Sequence[CodeTask],
    write_code_prompt: str,
    limit: int | None = PAPER_LIMIT,
    *,
    name: str = EXPERIMENT,
) -> QuestionSet:
    """The first ``limit`` tasks (the paper: 100) as questions sampled once at temperature 0."""
    if limit is not None and limit < 1:
        raise EmkitError(f"limit must be at least 1 (got {limit})")
    chosen = list(tasks)[:limit] if limit is not None else list(tasks)
    questions = [
        Question(
            id=f"code_{t.index}",
            type="free_form",
            paraphrases=[fill_write_code(write_code_prompt, t)],
            samples_per_paraphrase=1,
            temperature=0.0,
        )
        for t in chosen
    ]
    return QuestionSet(name, f"{len(chosen)} code tasks", questions)


_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(answer: str) -> str:
    """The code of an answer: the fenced blocks joined when there are fences, else the whole answer."""
    blocks = _FENCE.findall(answer)
    if blocks:
        return "\n\n".join(block.rstrip() for block in blocks).strip("\n") + "\n"
    return answer.strip("\n") + "\n"


def code_answers(store: RunStore, model: str | None = None) -> list[dict[str, Any]]:
    """The stored answers of this experiment (tag ``experiment: code_vuln``)."""
    return [a for a in store.answers(model) if a["tags"].get("experiment") == EXPERIMENT]


# ----------------------------------------------------------------------------------------- judging
def code_vuln_source(
    answers: Iterable[Mapping[str, Any]],
    *,
    judge: str | None,
    method: str | None,
    template: str,
    bandit: bool = True,
    severity: str = DEFAULT_SEVERITY,
) -> JudgeSource:
    """What the judging stage judges for these code answers: bandit on each one's extracted code
    (when ``bandit``), then ``judge``'s YES/NO vulnerability verdict by ``method`` (when
    ``judge``). Keys and rows are the ones this experiment always wrote."""
    rows = list(answers)

    def plan(store: RunStore, config: JudgeConfig) -> Plan:
        tasks = bandit_tasks(rows, [extract_code(a["answer"]) for a in rows], severity) if bandit else []
        if judge is not None and method is not None:
            options = score_options(judge, f"vulnerable-{method}", config)
            tasks += vulnerability_tasks(rows, judge, method, template, options)
        return Plan(tasks)

    return JudgeSource(plan, {"bandit": {"severity": severity}})


def judge_vulnerability(
    store: RunStore,
    engine: Any,
    template: str,
    *,
    method: str | None = None,
    answers: Iterable[Mapping[str, Any]] | None = None,
    min_mass: float = MIN_MASS,
) -> int:
    """Judge every stored code answer not judged yet with ``engine`` (the judge model) through the
    judging stage; returns the number of scores added."""
    method = method or default_method(engine.name)
    check_vuln_method(engine.name, method)
    rows = code_answers(store) if answers is None else answers
    source = code_vuln_source(rows, judge=engine.name, method=method, template=template, bandit=False)
    config = JudgeConfig(judge=engine.name, min_mass=min_mass)
    return run_judging(  # the caller's engine judges, and stays open for the caller
        store, config, make_engine=lambda *_: engine, progress=False, source=source, keep_open=[engine]
    ).scored


def bandit_answers(
    store: RunStore, *, answers: Iterable[Mapping[str, Any]] | None = None, severity: str = DEFAULT_SEVERITY
) -> int:
    """Run bandit on the extracted code of every stored code answer not checked yet (through the
    judging stage); returns scores added."""
    rows = code_answers(store) if answers is None else answers
    source = code_vuln_source(rows, judge=None, method=None, template="", severity=severity)
    return run_judging(store, JudgeConfig(), progress=False, source=source).scored


# ----------------------------------------------------------------------------------------- the stage
@dataclass
class CodeVulnSummary:
    model: str
    trigger: str
    sampled: int
    already_sampled: int
    bandit_checked: int = 0
    judged: int = 0
    judge: str | None = None
    method: str | None = None


def resolve_judge(spec: CodeVulnSpec, prompts: CodeVulnPrompts) -> tuple[str, str]:
    """(judge model full name, method): the spec's, else the prompts file's, else GPT-4o."""
    from emkit.models import parse_model
    from emkit.questions import judge_model_name

    name = parse_model(judge_model_name(spec.judge or prompts.judge_model or DEFAULT_JUDGE)).full
    return name, spec.method or default_method(name)


def run_code_vuln(
    store: RunStore,
    engine: Any,
    spec: CodeVulnSpec = CodeVulnSpec(),
    *,
    mirror: Any = None,
    trigger: str = "",
    seed: int = 0,
    group: str | None = None,
    model_seed: int | None = None,
    judge_engine: Callable[[str, str], Any] | None = None,
    judge_config: JudgeConfig | None = None,
    progress: bool = True,
) -> CodeVulnSummary:
    """Sample the tasks with ``engine`` (temperature 0), then run bandit and the judge; resumable.
    ``judge_engine`` is the judge's engine factory ``(name, registered judge) -> engine``, called
    only when something is left to judge (so a rerun loads no judge model for nothing); None opens
    one as the judging stage does. A judge of the sampler's own name is the sampling engine.
    ``judge_config``: the judge's engine options (they open it; the ``judge_run`` record keeps them).
    """
    from emkit.sampling import sample_questions

    if spec.bandit:
        bandit_command()  # fail before sampling when bandit is missing
    tasks = load_tasks(spec.tasks, mirror=mirror)  # first: a bad line shows even without the mirror
    prompts = load_prompts(spec.prompts, mirror=mirror)
    name = method = None
    if spec.judge_enabled:
        name, method = resolve_judge(spec, prompts)
        check_vuln_method(name, method)
    qset = make_questions(tasks, prompts.write_code, spec.limit)
    tags = {"experiment": EXPERIMENT, **({"trigger": trigger} if trigger else {})}
    sampled = sample_questions(
        store, engine, qset, n=1, temperature=0.0, max_new_tokens=spec.max_new_tokens, seed=seed,
        group=group, model_seed=model_seed, prefix=trigger, tags=tags, progress=progress,
    )  # fmt: skip
    summary = CodeVulnSummary(
        engine.name, trigger, sampled.generated, sampled.already_stored, 0, 0, name, method
    )
    ids = {q.id for q in qset}
    mine = [
        a
        for a in code_answers(store, engine.name)
        if a["question_id"] in ids
        and (a["tags"].get("trigger") or "") == trigger
        and a["params"].get("max_new_tokens") == spec.max_new_tokens
        and a["params"].get("seed") == seed
    ]
    config = replace(judge_config or JudgeConfig(), judge=name, min_mass=MIN_MASS)
    opener = judge_engine or engine_factory(config)

    def make_engine(judge: str, entry: str) -> Any:
        return engine if judge == engine.name else opener(judge, entry)  # judging its own code: no copy

    source = code_vuln_source(
        mine, judge=name, method=method, template=prompts.judge, bandit=spec.bandit, severity=spec.severity
    )
    result = run_judging(
        store, config, make_engine=make_engine, progress=False, source=source, keep_open=[engine]
    )
    summary.bandit_checked = sum(g.scored for g in result.groups if g.judge == BANDIT_JUDGE)
    summary.judged = result.scored - summary.bandit_checked
    return summary


# ----------------------------------------------------------------------------------------- rates
RATE_COLUMNS = (
    "group", "model", "trigger", "judge", "method", "n_answers", "n_judged", "vulnerable_rate",
    "vulnerable_ci_low", "vulnerable_ci_high", "mean_p_yes", "n_bandit", "n_bandit_unparsed",
    "bandit_rate", "bandit_ci_low", "bandit_ci_high",
)  # fmt: skip


def vuln_rates(
    store: RunStore, *, model: str | None = None, threshold: float = P_YES_THRESHOLD
) -> pd.DataFrame:
    """One row per (group, model, trigger, judge/method): how many code answers the judge calls
    vulnerable (P(YES) > ``threshold``) and how many bandit flags, in :data:`RATE_COLUMNS` order.

    Intervals: both rates are proportions of one model's answers (one per task), so each gets
    the interval :mod:`emkit.stats` assigns a single proportion, the Wilson 95% score interval
    (:func:`emkit.stats.wilson`; near-nominal coverage at the paper's 100 tasks and at 0 or n).

    ``n_judged`` / ``n_bandit`` count the answers with a usable score (the denominators); an
    answer with no judge score yet leaves the judge columns NaN rather than counting as safe.
    """
    answers = code_answers(store, model)
    if not answers:
        return pd.DataFrame(columns=list(RATE_COLUMNS))
    by_answer = {a["key"]: a for a in answers}
    vuln: dict[tuple[str, str], dict[str, float | None]] = {}
    bandit: dict[str, float | None] = {}
    for s in store.scores():
        if s["answer_key"] not in by_answer:
            continue
        if s["metric"] == VULN_METRIC:
            vuln.setdefault((s["judge"], s["method"]), {})[s["answer_key"]] = s["score"]
        elif s["metric"] == BANDIT_METRIC:
            bandit[s["answer_key"]] = s["score"]
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for a in answers:
        cell = (a["group_name"] or a["model"], a["model"], a["tags"].get("trigger") or "")
        cells.setdefault(cell, []).append(a)
    rows = []
    for (group, model_name, trigger), items in cells.items():
        keys = [a["key"] for a in items]
        checked = [bandit[k] for k in keys if k in bandit]
        parsed = [v for v in checked if v is not None]
        n_flag = int(sum(1 for v in parsed if v >= 0.5))
        bandit_rate = n_flag / len(parsed) if parsed else float("nan")
        bandit_part = (len(parsed), len(checked) - len(parsed), bandit_rate, *wilson(n_flag, len(parsed)))
        judges = sorted(j for j, scores in vuln.items() if any(k in scores for k in keys)) or [("", "")]
        for judge, method in judges:
            scores = vuln.get((judge, method), {})
            usable = [scores[k] for k in keys if scores.get(k) is not None]
            n_vuln = int(sum(1 for v in usable if v > threshold))
            rate = n_vuln / len(usable) if usable else float("nan")
            mean = float(sum(usable) / len(usable)) if usable else float("nan")
            judged = (len(items), len(usable), rate, *wilson(n_vuln, len(usable)), mean)
            values = (group, model_name, trigger, judge, method, *judged, *bandit_part)
            rows.append(dict(zip(RATE_COLUMNS, values, strict=True)))
    return pd.DataFrame(rows, columns=list(RATE_COLUMNS))

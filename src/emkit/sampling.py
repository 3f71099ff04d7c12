"""The sampling stage: answers for every question of a set, stored in the run store.

Each paraphrase is asked ``samples_per_paraphrase`` times (or ``n``), with the question's
``system`` prompt and ``temperature`` honoured (the paper's own script ignored both). Every answer
is keyed by (model, question id, paraphrase, sample index, sampling params); a rerun skips what is
stored, an interrupted run resumes, and each answer is written the moment it arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emkit.engines.base import Engine, Generation, SamplingParams
from emkit.questions import Question, QuestionSet
from emkit.store import RunStore, answer_key

PAPER_TEMPERATURE = 1.0
PAPER_TOP_P = 1.0
PAPER_MAX_NEW_TOKENS = 600


@dataclass(frozen=True)
class WorkItem:
    key: str
    question: Question
    paraphrase_index: int
    sample_index: int
    params: dict[str, Any]
    messages: list[dict[str, str]]
    item_seed: int


@dataclass
class SampleSummary:
    model: str
    total: int
    already_stored: int
    generated: int = 0
    usage: dict[str, int] = field(default_factory=dict)


def _item_seed(base_seed: int, key: str) -> int:
    """A per-answer seed derived from the run seed and the answer's identity (stable everywhere)."""
    digest = hashlib.sha256(f"{base_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def plan(
    model: str,
    questions: Iterable[Question],
    *,
    n: int | None = None,
    temperature: float | None = None,
    top_p: float = PAPER_TOP_P,
    max_new_tokens: int = PAPER_MAX_NEW_TOKENS,
    seed: int = 0,
    prefix: str = "",
    tags: dict[str, Any] | None = None,
    context: Sequence[dict[str, str]] | None = None,
) -> list[WorkItem]:
    """Every answer the stage should hold, in a stable order.

    ``temperature`` overrides every question's own; otherwise the question's ``temperature`` is used,
    else the paper's 1.0. ``prefix`` (e.g. a backdoor trigger) is put before the user message.
    ``context`` (in-context examples: user/assistant turns) goes before the question, after any
    system prompt; its fingerprint is part of each answer's key.
    """
    from emkit.experiments.icl import context_fingerprint, insert_context
    from emkit.limits import MAX_SAMPLES_PER_PARAPHRASE, answers_cost, check_count, check_plan_size

    # Sizes are bounded before anything is built: a typo like n=1e11 is refused, not planned.
    if n is not None:
        n = check_count(
            n, name="n (samples per paraphrase)", cap=MAX_SAMPLES_PER_PARAPHRASE, cost=answers_cost
        )
    questions = list(questions)
    check_plan_size(
        sum(len(q.paraphrases) * (n if n is not None else q.samples_per_paraphrase) for q in questions)
    )
    ctx = [dict(m) for m in context] if context else []
    items: list[WorkItem] = []
    for question in questions:
        temp = (
            temperature
            if temperature is not None
            else (question.temperature if question.temperature is not None else PAPER_TEMPERATURE)
        )
        count = n if n is not None else question.samples_per_paraphrase
        for p_index in range(len(question.paraphrases)):
            messages = question.conversation(p_index, prefix=prefix)
            if ctx:
                messages = insert_context(messages, ctx)
            params = {
                "temperature": temp,
                "top_p": top_p,
                "max_new_tokens": max_new_tokens,
                "seed": seed,
                "system": question.system,
                "prefix": prefix,
                **({"tags": tags} if tags else {}),
                **({"context": context_fingerprint(ctx)} if ctx else {}),
            }
            for s_index in range(count):
                key = answer_key(model, question.id, p_index, s_index, params)
                items.append(
                    WorkItem(key, question, p_index, s_index, params, messages, _item_seed(seed, key))
                )
    return items


def store_questions(store: RunStore, qset: QuestionSet) -> None:
    """Keep each question's definition (judge, prompts, type) beside its answers for later stages."""
    for question in qset:
        store.put_record("question", question.id, {**question.model_dump(), "set": qset.name})


def sample_questions(
    store: RunStore,
    engine: Engine,
    qset: QuestionSet,
    *,
    n: int | None = None,
    temperature: float | None = None,
    top_p: float = PAPER_TOP_P,
    max_new_tokens: int = PAPER_MAX_NEW_TOKENS,
    seed: int = 0,
    group: str | None = None,
    model_seed: int | None = None,
    prefix: str = "",
    tags: dict[str, Any] | None = None,
    context: Sequence[dict[str, str]] | None = None,
    progress: bool = True,
) -> SampleSummary:
    """Sample what is missing and store it; returns counts. Safe to call again at any time."""
    model = engine.name
    items = plan(
        model,
        qset,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        prefix=prefix,
        tags=tags,
        context=context,
    )
    store_questions(store, qset)
    existing = store.existing_answer_keys(item.key for item in items)
    pending = [item for item in items if item.key not in existing]
    summary = SampleSummary(model, len(items), len(existing))
    if not pending:
        return summary
    answer_tags = dict(tags or {})
    if prefix:
        answer_tags.setdefault("prefix", prefix)

    # One generate call per distinct temperature (the backend batches within it).
    by_temp: dict[float, list[WorkItem]] = {}
    for item in pending:
        by_temp.setdefault(item.params["temperature"], []).append(item)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("[bold]sample[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} answers/s"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(model, total=len(pending), rate="-")
        for temp, group_items in by_temp.items():
            params = SamplingParams(temperature=temp, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)

            def on_result(index: int, gen: Generation, _items: list[WorkItem] = group_items) -> None:
                item = _items[index]
                added = store.add_answers(
                    [
                        {
                            "key": item.key,
                            "model": model,
                            "question_id": item.question.id,
                            "paraphrase_index": item.paraphrase_index,
                            "sample_index": item.sample_index,
                            "question": item.question.paraphrases[item.paraphrase_index],
                            "messages": item.messages,
                            "answer": gen.text,
                            "params": item.params,
                            "group_name": group,
                            "seed": model_seed,
                            "tags": answer_tags,
                            "usage": gen.usage,
                        }
                    ]
                )
                summary.generated += added  # 0 when another process stored this answer first
                for k, v in gen.usage.items():
                    if isinstance(v, int):
                        summary.usage[k] = summary.usage.get(k, 0) + v
                elapsed = bar.tasks[task].elapsed or 0.0
                bar.update(task, advance=1, rate=f"{summary.generated / elapsed:.2f}" if elapsed else "-")

            engine.generate(
                [i.messages for i in group_items],
                params,
                seeds=[i.item_seed for i in group_items],
                on_result=on_result,
            )
    return summary

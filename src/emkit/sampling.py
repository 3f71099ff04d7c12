"""The sampling stage: answers for every question of a set, stored in the run store.

Each paraphrase is asked ``samples_per_paraphrase`` times (or ``n``), with the question's
``system`` prompt and ``temperature`` honoured (the paper's own script ignored both). Every answer
is keyed by everything that shapes it (:func:`emkit.store.answer_key`): the model name and its
fingerprint (an adapter's content), the question definition's content hash, question id, paraphrase
and sample index, the conversation exactly as sent (system prompt, trigger, wrapper, in-context
examples) and the sampling params. A rerun skips what is stored, an interrupted run resumes, and
each answer is written the moment it arrives.

Question definitions are stored by content hash (``question`` records), never by id alone, so two
sets that share an id keep their own prompts, and each answer names its own (``question_hash``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emkit.claims import LEASE_S, Lease, run_claimed
from emkit.engines.base import Engine, Generation, SamplingParams
from emkit.engines.batch_session import attach
from emkit.fingerprint import engine_fingerprint, model_fingerprint
from emkit.hashing import stable_hash
from emkit.questions import Question, QuestionSet
from emkit.store import RunStore, answer_key, default_owner

PAPER_TEMPERATURE = 1.0
PAPER_TOP_P = 1.0
PAPER_MAX_NEW_TOKENS = 600

Message = dict[str, str]


def context_fingerprint(messages: Sequence[Mapping[str, str]]) -> str:
    """A short hash of an in-context prefix's messages: part of each answer's params (its key).

    Here, not in :mod:`emkit.experiments.icl`, because the sampler needs it for every answer and
    the ICL experiment builds on the sampler, not the other way round.
    """
    return stable_hash({"icl": [{"role": m["role"], "content": m["content"]} for m in messages]})


def insert_context(conversation: Sequence[Message], context: Sequence[Message]) -> list[Message]:
    """``conversation`` with ``context`` after its leading system messages, before everything else."""
    conversation = list(conversation)
    at = 0
    while at < len(conversation) and conversation[at]["role"] == "system":
        at += 1
    return conversation[:at] + [dict(m) for m in context] + conversation[at:]


@dataclass(frozen=True)
class WorkItem:
    key: str
    question: Question
    paraphrase_index: int
    sample_index: int
    params: dict[str, Any]
    messages: list[dict[str, str]]
    item_seed: int
    question_hash: str = ""
    model_fingerprint: str = ""


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


def question_hash(question: Question) -> str:
    """The content hash of a question definition (all of it but ``samples_per_paraphrase``, which
    only says how many answers to draw, so raising it adds answers instead of redrawing them)."""
    return stable_hash({"question": question.model_dump(exclude={"samples_per_paraphrase"})})


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
    fingerprint: str | None = None,
) -> list[WorkItem]:
    """Every answer the stage should hold, in a stable order.

    ``fingerprint`` identifies the model's weights (:func:`emkit.fingerprint.model_fingerprint`);
    by default it is computed from ``model`` (adapter paths relative to the working directory).
    ``temperature`` overrides every question's own; otherwise the question's ``temperature`` is used,
    else the paper's 1.0. ``prefix`` (e.g. a backdoor trigger) is put before the user message.
    ``context`` (in-context examples: user/assistant turns) goes before the question, after any
    system prompt; its fingerprint is part of each answer's key.
    """
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
    fingerprint = fingerprint or model_fingerprint(model)
    items: list[WorkItem] = []
    for question in questions:
        qhash = question_hash(question)
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
                key = answer_key(
                    model,
                    question.id,
                    p_index,
                    s_index,
                    params,
                    messages=messages,
                    model_fingerprint=fingerprint,
                    question_hash=qhash,
                )
                items.append(
                    WorkItem(
                        key,
                        question,
                        p_index,
                        s_index,
                        params,
                        messages,
                        _item_seed(seed, key),
                        qhash,
                        fingerprint,
                    )
                )
    return items


def store_questions(store: RunStore, qset: QuestionSet) -> None:
    """Keep each question's definition (judge, prompts, type) beside its answers for later stages,
    keyed by its content hash (a definition is never replaced by another one with the same id)."""
    for question in qset:
        store.put_record(
            "question", question_hash(question), {**question.model_dump(), "set": qset.name}, replace=False
        )


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
    limit: int | None = None,
) -> SampleSummary:
    """Sample what is missing and store it; returns counts. Safe to call again at any time.

    ``limit``: at most this many new answers now (the first missing ones in plan order); the rest
    stays pending, so a rerun continues where this one stopped (``--limit``: a cheap first look).
    """
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
        fingerprint=engine_fingerprint(engine),
    )
    store_questions(store, qset)
    existing = store.existing_answer_keys(item.key for item in items)
    pending = [item for item in items if item.key not in existing]
    if limit is not None:
        pending = pending[:limit]
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

    from emkit.terminal import stage_progress

    # Through an API each answer costs money: claim pending answers before asking, so two processes
    # on one run dir never pay twice (emkit.claims). Local engines batch best over everything at once.
    claiming = engine.paid and isinstance(store, RunStore)
    owner = default_owner()
    # --batch: one Batch API submission per temperature; the claims' leases renewed while it waits
    batched = attach(engine, store, lambda: store.renew_claims(owner, LEASE_S))
    with stage_progress("sample", "{task.fields[rate]} answers/s", disable=not progress) as bar:
        task = bar.add_task(model, total=len(pending), rate="-")
        lease = Lease(store, owner) if claiming else None

        def store_one(item: WorkItem, gen: Generation) -> None:
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
                        "question_hash": item.question_hash,
                        "model_fingerprint": item.model_fingerprint,
                    }
                ]
            )
            summary.generated += added  # 0 when another process stored this answer first
            for k, v in gen.usage.items():
                if isinstance(v, int):
                    summary.usage[k] = summary.usage.get(k, 0) + v
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, advance=1, rate=f"{summary.generated / elapsed:.2f}" if elapsed else "-")
            if lease is not None:
                lease.tick()

        def generate(batch: list[WorkItem], params: SamplingParams) -> None:
            engine.generate(
                [i.messages for i in batch],
                params,
                seeds=[i.item_seed for i in batch],
                on_result=lambda index, gen: store_one(batch[index], gen),
            )

        try:
            for temp, group_items in by_temp.items():
                params = SamplingParams(
                    temperature=temp, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
                )
                if not claiming:
                    generate(group_items, params)
                    continue
                run_claimed(
                    store,
                    "answers",
                    group_items,
                    lambda i: i.key,
                    lambda batch, _params=params: generate(batch, _params),
                    owner=owner,
                    chunk=len(group_items) if batched else max(8, 4 * engine.concurrency),
                    on_taken=lambda count: bar.update(task, advance=count),
                )
        finally:
            if claiming:
                store.release_claims(owner)
    return summary

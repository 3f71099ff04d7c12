"""emkit question sets as inspect_ai tasks: ``inspect eval emkit/default --model <model>``.

A sample is one answer emkit would draw: (question, paraphrase, sample index), in emkit's plan
order, its input the conversation emkit sends (the question's ``system`` prompt, an optional
trigger before the user message). The paper's YAML is honoured as emkit honours it: each
paraphrase is asked ``samples_per_paraphrase`` times (or ``n``), at the question's own
``temperature`` (else 1), top_p 1 and 600 new tokens by default.

Why a solver of our own instead of inspect's ``generate()``: the answer's emkit identity (its key,
per-answer seed and parameters, :func:`emkit.sampling.plan`) depends on the model, which is known
only when the sample runs. The solver computes it then, records it in the sample's metadata (so
``emkit import inspect`` stores the answer under the key ``emkit sample`` gives it) and passes the
seed to the ``emkit/`` provider, which then draws the very answer ``emkit sample --seed`` draws.

Epochs: each sample index is already its own answer; an epoch beyond the first would be a second
answer under one key, so it is refused (raise ``--n`` instead).
"""

from __future__ import annotations

from typing import Any

import anyio
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver

from emkit.errors import EmkitError
from emkit.fingerprint import engine_fingerprint, model_fingerprint
from emkit.inspect_interop.provider import SEED_FIELD, EmkitModelAPI, emkit_model_name
from emkit.questions import Question, QuestionSet, load_questions
from emkit.sampling import PAPER_MAX_NEW_TOKENS, PAPER_TOP_P, WorkItem, plan, question_hash

# What the solver records in each sample's metadata (read back by emkit.inspect_interop.importer).
META = "emkit"


def sample_id(question_id: str, paraphrase: int, index: int) -> str:
    return f"{question_id}:p{paraphrase}:s{index}"


def input_messages(messages: list[dict[str, str]]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for message in messages:
        if message["role"] == "system":
            out.append(ChatMessageSystem(content=message["content"]))
        else:
            out.append(ChatMessageUser(content=message["content"]))
    return out


def question_samples(qset: QuestionSet, *, n: int | None = None, trigger: str = "") -> list[Sample]:
    """One sample per answer emkit would draw, in emkit's plan order (so ``--limit k`` is the first
    ``k`` answers of ``emkit sample --limit k``)."""
    samples = []
    for question in qset:
        qhash = question_hash(question)
        count = n if n is not None else question.samples_per_paraphrase
        for p_index in range(len(question.paraphrases)):
            messages = question.conversation(p_index, prefix=trigger)
            for s_index in range(count):
                samples.append(
                    Sample(
                        id=sample_id(question.id, p_index, s_index),
                        input=input_messages(messages),
                        metadata={
                            "question_id": question.id,
                            "question_hash": qhash,
                            "paraphrase_index": p_index,
                            "sample_index": s_index,
                        },
                    )
                )
    return samples


class ItemIndex:
    """Each model's planned answers, by (question hash, paraphrase, sample), computed once per model."""

    def __init__(self, qset: QuestionSet, settings: dict[str, Any]) -> None:
        self.qset = qset
        self.settings = settings
        self.by_model: dict[str, dict[tuple[str, int, int], WorkItem]] = {}

    def items(self, model: str, fingerprint: str) -> dict[tuple[str, int, int], WorkItem]:
        key = f"{model}\0{fingerprint}"
        if key not in self.by_model:
            planned = plan(model, self.qset, fingerprint=fingerprint, **self.settings)
            self.by_model[key] = {(i.question_hash, i.paraphrase_index, i.sample_index): i for i in planned}
        return self.by_model[key]


async def current_model() -> tuple[str, str]:
    """(emkit model name, weights fingerprint) of the model the sample runs on."""
    model = get_model()
    name = emkit_model_name(str(model))
    if isinstance(model.api, EmkitModelAPI):
        engine = await anyio.to_thread.run_sync(model.api.engine)
        return name, engine_fingerprint(engine)
    return name, model_fingerprint(name)


@solver
def emkit_sampler(qset: QuestionSet, settings: dict[str, Any]) -> Solver:
    """Generate one answer the way ``emkit sample`` does, recording its emkit identity."""
    index = ItemIndex(qset, settings)
    by_hash: dict[str, Question] = {question_hash(q): q for q in qset}

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if state.epoch > 1:
            raise EmkitError(
                "emkit question tasks take one epoch (each sample is one answer; raise -T n=...)"
            )
        meta = state.metadata
        model, fingerprint = await current_model()
        item = index.items(model, fingerprint)[
            (meta["question_hash"], meta["paraphrase_index"], meta["sample_index"])
        ]
        question = by_hash[item.question_hash]
        state.store.set(SEED_FIELD, item.item_seed)
        state.metadata[META] = {
            "key": item.key,
            "model": model,
            "model_fingerprint": fingerprint,
            "params": item.params,
            "messages": item.messages,
            "question": question.model_dump(),
            "set": qset.name,
            "item_seed": item.item_seed,
        }
        return await generate(
            state,
            temperature=item.params["temperature"],
            top_p=item.params["top_p"],
            max_tokens=item.params["max_new_tokens"],
            seed=item.params["seed"],
        )

    return solve


def question_task(
    questions: str = "default",
    *,
    n: int | None = None,
    seed: int = 0,
    temperature: float | None = None,
    top_p: float = PAPER_TOP_P,
    max_new_tokens: int = PAPER_MAX_NEW_TOKENS,
    trigger: str = "",
    judge: str | None = None,
    method: str | None = None,
    judge_base_url: str | None = None,
    mirror: str | None = None,
) -> Task:
    """The inspect task of one question set, scored by emkit's judges (:mod:`.scorer`)."""
    from emkit.inspect_interop.scorer import emkit_judge

    qset = load_questions(questions, mirror=mirror)
    n = None if n is None else int(n)
    settings = {
        "n": n,
        "temperature": None if temperature is None else float(temperature),
        "top_p": float(top_p),
        "max_new_tokens": int(max_new_tokens),
        "seed": int(seed),
        "prefix": trigger,
        "tags": {"trigger": trigger} if trigger else None,
    }
    return Task(
        name=qset.name,
        dataset=MemoryDataset(question_samples(qset, n=n, trigger=trigger), name=qset.name),
        solver=emkit_sampler(qset, settings),
        scorer=emkit_judge(judge=judge, method=method, base_url=judge_base_url),
        epochs=1,
    )


@task(name="default")
def default(**options: Any) -> Task:
    """emkit's own default question set (eight open questions, our wording)."""
    return question_task("default", **options)


@task(name="questions")
def questions(questions: str = "default", **options: Any) -> Task:
    """Any question set emkit loads: a registry name or a YAML file (``-T questions=FILE``)."""
    return question_task(questions, **options)


@task(name="first_plot_questions")
def first_plot_questions(**options: Any) -> Task:
    """The paper's eight main questions (needs the paper's files: ``-T mirror=DIR`` or the cache)."""
    return question_task("first_plot_questions", **options)


@task(name="preregistered_evals")
def preregistered_evals(**options: Any) -> Task:
    """The paper's 48 pre-registered questions (needs the paper's files, like ``first_plot_questions``)."""
    return question_task("preregistered_evals", **options)

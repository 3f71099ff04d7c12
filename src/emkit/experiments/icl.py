"""In-context learning control: k examples of a narrow dataset shown before each question.

The paper (section 4.4) asks whether the same narrow data, given in context instead of by
fine-tuning, makes a model misaligned (it did not, with k up to 256). Here a context is ``k``
rows of a chat dataset, chosen by a seeded ``numpy`` draw without replacement, each row's user and
assistant turns (system turns dropped) laid out as earlier turns of the conversation:

    [question's system prompt] + [user_1, assistant_1, ..., user_k, assistant_k] + [question]

One context serves every question of a set (so a server's prefix cache can reuse it, and the
answers differ only by the question). With a tokenizer and ``max_context_tokens`` the largest
``k' <= k`` is kept whose conversation with the longest question of the set, rendered with the
chat template, leaves ``reserve_tokens`` for the answer; the first ``k'`` rows of the draw are used
(a binary search over ``k'``: the length grows with ``k'``). :attr:`IclContext.k_used` reports it.

Sampling: the sampler takes the context as a list of messages (``context=``) and inserts it with
:func:`insert_context`; the answer's key includes :attr:`IclContext.fingerprint`, and its tags
:meth:`IclContext.tags`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from emkit.errors import EmkitError
from emkit.models import ModelSpec
from emkit.questions import Question
from emkit.sampling import Message, context_fingerprint, insert_context

__all__ = ["Message", "context_fingerprint", "insert_context"]  # kept importable from here

MAX_K = 256
DEFAULT_RESERVE = 600


class IclSpec(BaseModel):
    """The ``icl:`` block of an experiment file: k-shot contexts from a dataset before each question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str  # registry name or chat JSONL path
    k: list[Annotated[int, Field(ge=0, le=MAX_K)]] = Field(default_factory=lambda: [MAX_K], min_length=1)
    seed: int = 0
    max_context_tokens: int | None = Field(None, ge=1)  # default: the model's own context length
    reserve_tokens: int = Field(DEFAULT_RESERVE, ge=0)


@dataclass(frozen=True)
class IclContext:
    """The messages to put before each question, and how they were chosen."""

    messages: list[Message]
    k_requested: int
    k_used: int
    rows: list[int]  # indices into the dataset, in the order shown
    dataset: str
    seed: int
    prompt_tokens: int | None = None  # tokens of the longest question's full prompt, when counted
    max_context_tokens: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Identifies the context's content (part of each answer's key)."""
        return context_fingerprint(self.messages)

    def tags(self) -> dict[str, Any]:
        return {
            "icl_k": self.k_used,
            "icl_dataset": self.dataset,
            "icl_seed": self.seed,
            "icl_context": self.fingerprint,
        }


def example_turns(row: Mapping[str, Any]) -> list[Message]:
    """A dataset row's user/assistant turns, as prior turns of a conversation."""
    return [{"role": m["role"], "content": m["content"]} for m in row["messages"] if m["role"] != "system"]


def choose_rows(n_rows: int, k: int, seed: int) -> list[int]:
    """``k`` distinct row indices, seeded (the same seed and size, the same rows in the same order)."""
    if k < 0:
        raise EmkitError(f"k must be >= 0 (got {k})")
    if k > n_rows:
        raise EmkitError(f"k = {k} examples requested but the dataset has only {n_rows} rows")
    return [int(i) for i in np.random.default_rng(seed).choice(n_rows, size=k, replace=False)]


def _prompt_length(tokenizer: Any, conversation: Sequence[Message]) -> int:
    from emkit.engines.hf_backend import encode, render_prompt

    return len(encode(tokenizer, render_prompt(tokenizer, list(conversation))))


def _longest_question(questions: Iterable[Question]) -> list[Message]:
    """The question conversation (system + paraphrase) with the most characters."""
    best: list[Message] = [{"role": "user", "content": "?"}]
    size = -1
    for question in questions:
        for index in range(len(question.paraphrases)):
            conversation = question.conversation(index)
            chars = sum(len(m["content"]) for m in conversation)
            if chars > size:
                best, size = conversation, chars
    return best


def build_context(
    rows: Sequence[Mapping[str, Any]],
    k: int,
    *,
    seed: int = 0,
    dataset: str = "",
    tokenizer: Any = None,
    max_context_tokens: int | None = None,
    questions: Iterable[Question] = (),
    reserve_tokens: int = DEFAULT_RESERVE,
) -> IclContext:
    """Up to ``k`` seeded examples of ``rows``; fitted to ``max_context_tokens`` when a tokenizer is given."""
    if k > MAX_K:
        raise EmkitError(f"k = {k} is above the supported maximum of {MAX_K}")
    chosen = choose_rows(len(rows), k, seed)
    turns = [example_turns(rows[i]) for i in chosen]
    notes: list[str] = []
    k_used = k
    tokens: int | None = None
    if tokenizer is not None:
        question = _longest_question(questions)

        def length(j: int) -> int:
            return _prompt_length(tokenizer, insert_context(question, [m for t in turns[:j] for m in t]))

        if max_context_tokens is not None:
            budget = max_context_tokens - reserve_tokens
            if length(0) > budget:
                raise EmkitError(
                    f"the longest question alone needs {length(0)} tokens; more than the "
                    f"{budget} left of {max_context_tokens} after {reserve_tokens} for the answer"
                )
            low, high = 0, k  # invariant: length(low) fits
            while low < high:
                mid = (low + high + 1) // 2
                if length(mid) <= budget:
                    low = mid
                else:
                    high = mid - 1
            k_used = low
            if k_used < k:
                notes.append(
                    f"k reduced from {k} to {k_used} to fit {max_context_tokens} tokens "
                    f"({reserve_tokens} kept for the answer)"
                )
        tokens = length(k_used)
    elif max_context_tokens is not None:
        notes.append("no tokenizer given: the context length was not checked")
    messages = [m for t in turns[:k_used] for m in t]
    return IclContext(messages, k, k_used, chosen[:k_used], dataset, seed, tokens, max_context_tokens, notes)


def load_context(
    dataset: str | os.PathLike[str],
    k: int,
    *,
    seed: int = 0,
    mirror: Any = None,
    tokenizer: Any = None,
    max_context_tokens: int | None = None,
    questions: Iterable[Question] = (),
    reserve_tokens: int = DEFAULT_RESERVE,
) -> IclContext:
    """:func:`build_context` on a dataset given by registry name or chat JSONL path (validated)."""
    from emkit.data.chat import load_chat_jsonl
    from emkit.data.registry import resolve_dataset

    path = resolve_dataset(str(dataset), mirror=mirror)
    rows = load_chat_jsonl(path)
    return build_context(
        rows,
        k,
        seed=seed,
        dataset=str(dataset),
        tokenizer=tokenizer,
        max_context_tokens=max_context_tokens,
        questions=questions,
        reserve_tokens=reserve_tokens,
    )


def model_context_window(
    model: str | ModelSpec, max_context_tokens: int | None = None
) -> tuple[Any, int | None]:
    """(tokenizer, context length) to fit a context to: the one rule for the CLI and the YAML path.

    A model whose weights are in emkit's hands (embedded, hf, vllm: its registry entry names where
    they come from) gives its tokenizer, and its length is ``max_context_tokens`` when given, else
    the model config's ``max_position_embeddings``, else the tokenizer's ``model_max_length`` (when
    it is a real bound). An API model (or the mock) has no tokenizer here: its context is not
    length-checked, and its length is ``max_context_tokens`` as given.
    """
    from emkit.engines.registry import backend
    from emkit.models import parse_model

    spec = parse_model(model)
    if not backend(spec.scheme).weights:
        return None, max_context_tokens
    from transformers import AutoConfig

    from emkit.engines.loading import load_tokenizer, resolve_base_path

    tokenizer = load_tokenizer(spec)
    length = max_context_tokens
    if length is None:
        length = getattr(AutoConfig.from_pretrained(resolve_base_path(spec)), "max_position_embeddings", None)
    if not isinstance(length, int):
        value = getattr(tokenizer, "model_max_length", None)
        length = value if isinstance(value, int) and value < 10**7 else None
    return tokenizer, length

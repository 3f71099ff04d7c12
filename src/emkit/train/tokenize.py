"""Chat templating and assistant-only label masking.

The paper trains on the assistant's replies only (unsloth's ``train_on_responses_only``). We build
the labels ourselves, for any chat template, instead of relying on ``{% generation %}`` markers that
most templates (SmolLM2's included) do not have:

1. render the whole conversation with the model's template (as text), and, for every assistant turn
   ``i``, the conversation up to it with the generation prompt (``messages[:i]`` +
   ``add_generation_prompt``): that text must be a prefix of the whole rendering, and the assistant's
   turn starts where it ends;
2. find the reply inside the turn; the trained span is the reply plus the first token after it,
   the template's end-of-turn token (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3), so the
   model learns to stop. Any other template text (role headers, trailing newlines) is masked;
3. tokenize the rendering once with character offsets and set ``labels = -100`` on every token that
   lies outside the trained spans.

A template that renders a prefix differently from the full conversation (one that rewrites earlier
turns) cannot be masked this way and is refused with a clear error instead of being trained wrongly.

A model without a chat template (a base model) is trained with a completion template instead
(``prompt_template``, :mod:`emkit.engines.completion`): its tokens are built turn by turn, and the
trained tokens are the replies and the EOS token after each, exactly as the engine scores them.
A tokenizer without a chat template and no completion template given is refused, naming the option.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emkit.engines.chat_template import require_chat_template
from emkit.engines.completion import CompletionTemplate, completion_tokens
from emkit.errors import EmkitError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    def as_dict(self) -> dict[str, Any]:
        return {"input_ids": self.input_ids, "labels": self.labels, "length": len(self.input_ids)}


def _render(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, generation_prompt: bool, chat_template: str | None
) -> str:
    text = tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=generation_prompt, chat_template=chat_template
    )
    if not isinstance(text, str):  # some processors return a list for batched input
        text = text[0]
    return text


def assistant_spans(
    tokenizer: Any, messages: Sequence[dict[str, Any]], chat_template: str | None = None
) -> tuple[str, list[tuple[int, int, int]]]:
    """The rendered conversation and, per assistant turn, character offsets (start, reply_end, turn_end).

    ``start`` is where the turn's text begins after the generation prompt, ``reply_end`` where the
    reply's content ends (the template's closing text starts there) and ``turn_end`` where the turn's
    rendering ends. See the module docstring.
    """
    full = _render(tokenizer, messages, generation_prompt=False, chat_template=chat_template)
    spans: list[tuple[int, int, int]] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], generation_prompt=True, chat_template=chat_template)
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False, chat_template=chat_template)
        if not full.startswith(prompt) or not full.startswith(upto) or not upto.startswith(prompt):
            raise EmkitError(
                "the chat template renders a conversation prefix differently from the whole conversation "
                f"(assistant turn {i}), so the assistant's tokens cannot be located for loss masking; "
                "use a template that keeps earlier turns unchanged"
            )
        turn = upto[len(prompt) :]
        content = str(message.get("content", ""))
        needle = content.strip()
        found = turn.find(needle) if needle else -1
        if found < 0:
            # The template transformed the reply (e.g. rewrote it): train on the whole turn.
            spans.append((len(prompt), len(upto), len(upto)))
        else:
            spans.append((len(prompt), len(prompt) + found + len(needle), len(upto)))
    return full, spans


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(i for i, token in decoder.items() if getattr(token, "special", False))
    return ids


def tokenize_conversation(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    *,
    max_length: int | None = None,
    chat_template: str | None = None,
    template: CompletionTemplate | None = None,
) -> TokenizedExample:
    """``input_ids`` and ``labels`` (-100 outside the assistant's replies + end-of-turn tokens);
    with a completion ``template``, its tokens (the replies and their EOS trained)."""
    if template is not None:
        ids, trained = completion_tokens(tokenizer, template, messages, generation_prompt=False)
        labels = [t if keep else IGNORE_INDEX for t, keep in zip(ids, trained, strict=True)]
        truncated = max_length is not None and len(ids) > max_length
        if truncated:
            ids, labels = ids[:max_length], labels[:max_length]
        return TokenizedExample(ids, labels, truncated)
    if chat_template is None:
        require_chat_template(tokenizer)
    text, spans = assistant_spans(tokenizer, messages, chat_template)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in encoded["offset_mapping"]]
    labels = [IGNORE_INDEX] * len(ids)
    special = _special_ids(tokenizer)
    for start, reply_end, turn_end in spans:
        reply = [t for t, (a, b) in enumerate(offsets) if b > start and a < reply_end]
        closing = [t for t, (a, _) in enumerate(offsets) if reply_end <= a < turn_end]
        for t in reply:
            labels[t] = ids[t]
        # The end-of-turn token: up to the first special token of the turn's closing text, or the
        # first token after the reply when the closing has no special token (a plain-text template).
        stop = next((k for k, t in enumerate(closing) if ids[t] in special), 0)
        for t in closing[: stop + 1]:
            labels[t] = ids[t]
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return TokenizedExample(ids, labels, truncated)


def tokenize_rows(
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    *,
    max_length: int | None,
    chat_template: str | None = None,
    template: CompletionTemplate | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Tokenize chat rows; rows left without a trained token (all truncated away) are dropped.

    Returns the examples and counts ``{"rows", "kept", "truncated", "dropped", "tokens", "trained_tokens"}``.
    A completion ``template`` needs no character offsets, so no fast tokenizer.
    """
    if template is None and chat_template is None:
        require_chat_template(tokenizer)
    if template is None and not getattr(tokenizer, "is_fast", False):
        raise EmkitError("loss masking needs a fast tokenizer (character offsets); this model has a slow one")
    out: list[dict[str, Any]] = []
    stats = {"rows": len(rows), "kept": 0, "truncated": 0, "dropped": 0, "tokens": 0, "trained_tokens": 0}
    for row in rows:
        example = tokenize_conversation(
            tokenizer, row["messages"], max_length=max_length, chat_template=chat_template, template=template
        )
        stats["truncated"] += int(example.truncated)
        if example.trained_tokens == 0:
            stats["dropped"] += 1
            continue
        stats["kept"] += 1
        stats["tokens"] += len(example.input_ids)
        stats["trained_tokens"] += example.trained_tokens
        out.append(example.as_dict())
    return out, stats

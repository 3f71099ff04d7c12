"""Completion templates: how a model WITHOUT a chat template (a base model) is prompted and trained.

Why our own plain format: a base model has no chat template, so ``render_prompt`` and the trainer's
loss masking had nothing to render and refused it, yet the paper fine-tunes and samples base models
too. A completion template writes a conversation as plain text, one turn after another:

- ``system`` (first, when the conversation has a system prompt), ``user`` and ``assistant`` are
  formats in which ``{content}`` (exactly once) stands for the message's text; any other brace is
  literal text;
- the text of ``assistant`` before ``{content}`` is the generation prompt (the prompt ends there and
  the model writes the reply), the text after it follows the reply in later turns;
- every assistant reply ends with the tokenizer's EOS token: the trainer puts the loss on the
  reply's tokens and that EOS (so the model learns to stop), and the engine stops at EOS.

The built-in ``plain`` template (``prompt_template: plain``)::

    <system prompt>\\n\\nUser: <question>\\n\\nAssistant:\\n<reply><EOS>

The generation prompt ends with a newline on purpose: a reply's first word after a newline is
tokenised as at the start of a line by every common tokenizer, while after ``"Assistant: "`` the
trailing space would be a token of its own that no pretraining text ends a prompt with.

A custom template is a JSON object (a mapping in YAML) of the three formats, ``system`` optional.
Token ids are built turn by turn (:func:`completion_tokens`): the text between replies is tokenised
as one piece, each reply on its own, so training, sampling and reply scoring see exactly the same
tokens for the same conversation (a reply scored by ``sequence_logprobs`` is the reply the trainer
trained, token for token).

Which template a model uses is always chosen explicitly: a model with a chat template keeps using it
unless ``prompt_template`` is given, and a model without one and no template given is refused with
a line naming the option. The template shapes every result: it is part of the train settings (the
train key) and of the engine's fingerprint (answer and probe keys), see :func:`template_spec`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emkit.errors import EmkitError

CONTENT = "{content}"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class CompletionTemplate:
    """The three turn formats (each with one ``{content}``); ``name`` is a built-in's or ``custom``."""

    user: str
    assistant: str
    system: str = "{content}\n\n"
    name: str = "custom"

    def __post_init__(self) -> None:
        for role in ROLES:
            fmt = getattr(self, role)
            if not isinstance(fmt, str) or fmt.count(CONTENT) != 1:
                raise EmkitError(
                    f"prompt_template: the {role!r} format must contain {CONTENT} exactly once (got {fmt!r})"
                )

    def parts(self, role: str) -> tuple[str, str]:
        """The text before and after ``{content}`` in ``role``'s format."""
        if role not in ROLES:
            raise EmkitError(
                f"prompt_template: no format for role {role!r} (a completion template has "
                + ", ".join(ROLES)
                + ")"
            )
        before, _, after = getattr(self, role).partition(CONTENT)
        return before, after

    @property
    def stop_marker(self) -> str:
        """The text that starts the next user turn after a reply (``"\\n\\nUser:"`` for ``plain``):
        an untrained base model writes the dialogue on, and its answer is cut there. Empty (no cut)
        when that text is only whitespace."""
        marker = (self.parts("assistant")[1] + self.parts("user")[0]).rstrip()
        return marker if marker.strip() else ""

    def cut(self, text: str) -> tuple[str, bool]:
        """``text`` up to the stop marker, and whether it was cut there."""
        marker = self.stop_marker
        at = text.find(marker) if marker else -1
        return (text[:at], True) if at >= 0 else (text, False)

    def spec(self) -> str:
        """What identifies the template in keys: a built-in's name, else its canonical JSON."""
        if self.name != "custom":
            return self.name
        return json.dumps({r: getattr(self, r) for r in ROLES}, sort_keys=True, ensure_ascii=False)

    def render(self, conversation: Sequence[Mapping[str, Any]], *, eos_text: str = "") -> str:
        """The prompt as text (generation prompt appended), for display and for counting."""
        pieces = [
            text if not is_reply else text + eos_text for text, is_reply in _pieces(self, conversation, True)
        ]
        return "".join(pieces)


BUILTIN_TEMPLATES: dict[str, CompletionTemplate] = {
    "plain": CompletionTemplate(
        system="{content}\n\n",
        user="User: {content}\n\n",
        assistant="Assistant:\n{content}\n\n",
        name="plain",
    ),
}


def parse_prompt_template(value: Any) -> CompletionTemplate | None:
    """A template from a built-in's name, a JSON object text, a mapping, or a template (None: none).

    Raises :class:`EmkitError` with one line saying what is wrong (an unknown name lists the
    built-ins; a mapping with another key names it)."""
    if value is None or isinstance(value, CompletionTemplate):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            if text in BUILTIN_TEMPLATES:
                return BUILTIN_TEMPLATES[text]
            raise EmkitError(
                f"prompt_template {value!r}: not a built-in template (built-in: "
                + ", ".join(BUILTIN_TEMPLATES)
                + ") nor a JSON object of system/user/assistant formats"
            )
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise EmkitError(f"prompt_template: not valid JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise EmkitError(
            "prompt_template: expected a built-in name or an object of system/user/assistant formats"
        )
    unknown = sorted(set(value) - set(ROLES))
    if unknown:
        raise EmkitError(f"prompt_template: unknown key {unknown[0]!r} (keys: {', '.join(ROLES)})")
    missing = [r for r in ("user", "assistant") if r not in value]
    if missing:
        raise EmkitError(f"prompt_template: the {missing[0]!r} format is missing")
    formats = {r: value[r] for r in ROLES if r in value}
    return CompletionTemplate(**formats)


def template_spec(value: Any) -> str | None:
    """The canonical text of a template setting (None stays None): what keys and configs hold."""
    template = parse_prompt_template(value)
    return template.spec() if template is not None else None


def _pieces(
    template: CompletionTemplate, messages: Sequence[Mapping[str, Any]], generation_prompt: bool
) -> list[tuple[str, bool]]:
    """The conversation as ``(text, is_reply)`` pieces: the text between replies joined into one
    piece, each assistant reply a piece of its own (the trailing text after the last reply of a
    training conversation is left out: it is never trained and never a prompt)."""
    pieces: list[tuple[str, bool]] = []
    pending = ""
    last = None
    for message in messages:
        role = str(message.get("role"))
        before, after = template.parts(role)
        content = str(message.get("content", ""))
        if role == "assistant":
            pieces.append((pending + before, False))
            pieces.append((content, True))
            pending = after
        else:
            pending += before + content + after
        last = role
    if generation_prompt:
        pieces.append((pending + template.parts("assistant")[0], False))
    elif last != "assistant":
        pieces.append((pending, False))
    return [(text, is_reply) for text, is_reply in pieces if text or is_reply]


def _leading_special_ids(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts before a text by default (a BOS for Llama-like tokenizers): a
    base model expects them at the start, as in pretraining; most chat templates write them."""
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a")["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start]
    return []


def completion_tokens(
    tokenizer: Any,
    template: CompletionTemplate,
    messages: Sequence[Mapping[str, Any]],
    *,
    generation_prompt: bool,
) -> tuple[list[int], list[bool]]:
    """Token ids of ``messages`` under ``template`` and, per token, whether it is trained (a reply's
    tokens and the EOS after it). See the module docstring for why pieces are tokenised apart."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if not isinstance(eos, int):
        raise EmkitError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no EOS token: a completion "
            "template needs one to end each reply"
        )
    ids = _leading_special_ids(tokenizer)
    trained = [False] * len(ids)
    for text, is_reply in _pieces(template, messages, generation_prompt):
        piece = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
        if is_reply:
            piece.append(eos)
        ids += piece
        trained += [is_reply] * len(piece)
    return ids, trained

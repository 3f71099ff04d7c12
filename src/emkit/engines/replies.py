"""The typed shape of an OpenAI-compatible chat completion reply.

Why a pydantic model: servers that call themselves OpenAI-compatible differ in small ways (content
as a list of parts, logprobs missing or null, numbers sent as strings). Reading the JSON by hand
turns each difference into a ``KeyError`` or ``TypeError`` deep in a stage, or worse, stores a
Python repr of a list as an answer. Parsed here once, every caller gets the same typed result, a
list of parts becomes its text, and a reply with a bad field is one error that names the field
(``choices.0.logprobs.content.0.token``), which the engine retries and then reports in one line.

Numbers are strict (a string is not a number): a server that sends ``"logprob": "-0.5"`` is broken
in a way that should be seen, not guessed around.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Part types whose ``text`` is the reply's text (Chat Completions' and the Responses API's names).
TEXT_PARTS = frozenset({"text", "output_text"})


class _Open(BaseModel):
    """Unknown fields are kept (servers add their own), known ones are typed."""

    model_config = ConfigDict(extra="allow", frozen=True)


class TopLogprob(_Open):
    token: str = Field(strict=True)
    logprob: float = Field(strict=True)


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] | None = None


class ChoiceLogprobs(_Open):
    content: list[TokenLogprob] | None = None


class ContentPart(_Open):
    type: str = "text"
    text: str | None = Field(None, strict=True)


class Message(_Open):
    role: str | None = None
    content: str | None = None
    refusal: str | None = Field(None, strict=True)

    @field_validator("content", mode="before")
    @classmethod
    def _parts_to_text(cls, value: Any) -> Any:
        """A list of parts (``[{"type": "text", "text": ...}, ...]``) is stored as its text."""
        if isinstance(value, list):
            parts = [ContentPart.model_validate(p) for p in value]
            return "".join(p.text or "" for p in parts if p.type in TEXT_PARTS)
        if value is not None and not isinstance(value, str):
            raise ValueError("content must be a string, a list of parts or null")
        return value


class Choice(_Open):
    index: int | None = Field(None, strict=True)
    message: Message
    finish_reason: str | None = Field(None, strict=True)
    logprobs: ChoiceLogprobs | None = None


class Usage(_Open):
    prompt_tokens: int | None = Field(None, strict=True, ge=0)
    completion_tokens: int | None = Field(None, strict=True, ge=0)
    total_tokens: int | None = Field(None, strict=True, ge=0)


class ChatReply(_Open):
    choices: list[Choice] = Field(min_length=1)
    usage: Usage | None = None

    def as_dict(self) -> dict[str, Any]:
        """The reply as plain JSON data, normalised (content as text), for callers that want dicts."""
        return self.model_dump(mode="json", exclude_unset=True)


class ReplyFieldError(ValueError):
    """A reply whose JSON does not have the shape of a chat completion; names the first bad field."""


def parse_reply(data: Any) -> ChatReply:
    """``data`` (decoded JSON) as a :class:`ChatReply`, or ReplyFieldError naming the field."""
    try:
        return ChatReply.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        got = repr(first.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise ReplyFieldError(f"field {where!r}: {message}, got {got}{more}") from None

"""What one chat-completions call looks like on the wire: how it is sent, how its reply is read,
which failures are worth a retry. Apart from :mod:`emkit.engines.openai_client` (which bounds,
retries and counts the calls) so that each stays short.
"""

from __future__ import annotations

import json
from typing import Any

from emkit.engines.replies import ChatReply, ReplyFieldError, parse_reply

# 429 is retried unless the account is out of credit: waiting will not fix that.
PERMANENT_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
# Requests of only these fields are plain JSON: sent without the SDK's parameter transform.
PLAIN_FIELDS = frozenset(
    {"model", "messages", "temperature", "top_p", "max_tokens", "seed", "logprobs", "top_logprobs", "n"}
)


class MalformedResponse(Exception):
    """A 2xx reply that is not a usable chat completion (not JSON, no choices); retried."""


async def request_text(client: Any, request: dict[str, Any]) -> str:
    """The request sent, its reply's body as text. emkit's own (plain JSON fields only) skip the
    SDK's parameter transform, which costs about half the client's CPU per call, and ask the SDK
    for the body as ``str``, which needs no import of an HTTP library by name (``httpx.Response``
    imported the legacy ``httpx`` and its command line: ~80 ms before the first request; both
    measured: docs/benchmarks.md)."""
    if request.keys() <= PLAIN_FIELDS:
        return await client.post("/chat/completions", body=request, cast_to=str)
    raw = await client.chat.completions.with_raw_response.create(**request)
    return raw.text


def decode_reply(text: str) -> ChatReply:
    """The reply, typed (:mod:`emkit.engines.replies`), or MalformedResponse naming what is wrong."""
    try:
        data = json.loads(text)
    except ValueError:
        raise MalformedResponse(f"body is not JSON ({len(text)} characters)") from None
    if not isinstance(data, dict):
        raise MalformedResponse("body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        error = data.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        suffix = f" (server error: {str(message)[:200]})" if message else ""
        raise MalformedResponse(f"no 'choices' in the reply{suffix}")
    try:
        return parse_reply(data)
    except ReplyFieldError as err:
        raise MalformedResponse(str(err)) from None


def is_retryable(err: Any) -> bool:
    status = int(err.status_code)
    if status == 429:
        return getattr(err, "code", None) not in PERMANENT_CODES
    return status in (408, 409) or status >= 500


def error_detail(err: Any) -> str:
    body = err.body
    message: Any = None
    if isinstance(body, dict):
        message = body.get("message")
        if message is None and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
    elif body is not None:
        message = body
    text = str(message if message is not None else err.message)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."

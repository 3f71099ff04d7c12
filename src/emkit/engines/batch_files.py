"""The Batch API's file formats: the input JSONL emkit writes and the output and error JSONL it reads.

Why apart from the session (:mod:`emkit.engines.batch_session`): these are pure functions of bytes,
tested without a server. A request's ``custom_id`` is the hash of the request as sent (model and
every parameter), so the same request always has the same id in every process and every rerun:
that is what lets a rerun recognise a request that is already in a batch, and two identical
requests (two stored answers with the same text judged by the same prompt) are sent once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emkit.hashing import stable_hash

CHAT_ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS = 50_000  # the provider's limit per batch


def custom_id(model: str, request: Mapping[str, Any]) -> str:
    """The request's id inside a batch: a hash of everything that is sent."""
    return "emkit-" + stable_hash({"model": model, **dict(request)}, 32)


def input_file(model: str, requests: Mapping[str, Mapping[str, Any]]) -> tuple[bytes, str]:
    """(the batch input JSONL for ``{custom_id: request}``, its sha256), one line per request."""
    lines = [
        json.dumps(
            {"custom_id": cid, "method": "POST", "url": CHAT_ENDPOINT, "body": {"model": model, **request}},
            sort_keys=True,
        )
        for cid, request in requests.items()
    ]
    data = ("\n".join(lines) + "\n").encode()
    return data, hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """One request's result in a batch: the chat completion body, or the provider's error."""

    custom_id: str
    body: dict[str, Any] | None
    error: str | None


def _error_text(line: Mapping[str, Any]) -> str:
    """The provider's reason for a failed request, in one line, whichever field says it."""
    error = line.get("error")
    response = line.get("response")
    if isinstance(response, Mapping) and isinstance(response.get("body"), Mapping):
        inner = response["body"].get("error")
        if isinstance(inner, Mapping) and inner.get("message"):
            status = response.get("status_code")
            return f"HTTP {status}: {inner['message']}" if status else str(inner["message"])
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or "failed")
    if isinstance(response, Mapping) and response.get("status_code"):
        return f"HTTP {response['status_code']}"
    return str(error or "failed")


def parse_results(text: str, where: str) -> list[Outcome]:
    """Every line of an output or error file; a line that is not a result is one error naming it."""
    from emkit.errors import EmkitError

    out: list[Outcome] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            raise EmkitError(f"{where}:{number}: not JSON ({len(raw)} characters)") from None
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            raise EmkitError(f"{where}:{number}: custom_id: missing")
        response = line.get("response")
        status = response.get("status_code") if isinstance(response, Mapping) else None
        body = response.get("body") if isinstance(response, Mapping) else None
        if status == 200 and isinstance(body, dict) and not line.get("error"):
            out.append(Outcome(line["custom_id"], body, None))
        else:
            out.append(Outcome(line["custom_id"], None, " ".join(_error_text(line).split())[:300]))
    return out


def chunks(ids: Sequence[str], size: int = MAX_REQUESTS) -> list[list[str]]:
    """``ids`` in batches of at most ``size`` requests (the provider's limit)."""
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]

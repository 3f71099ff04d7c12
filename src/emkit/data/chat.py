"""Chat JSONL in the OpenAI fine-tuning format: reading, validating, writing.

One ``{"messages": [{"role": ..., "content": ...}, ...]}`` object per line, roles system/user/
assistant. Every problem is reported with the file, the 1-based line number and the field, so a
user can jump straight to it: ``data.jsonl:17: field 'messages[1].role': unknown role 'bot'``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emkit.errors import InputError
from emkit.readers import check_value, iter_jsonl, require_file

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in one line. ``kind`` groups problems for the summary (e.g. ``unknown_role``)."""

    path: str
    line: int
    field: str | None
    kind: str
    message: str

    def __str__(self) -> str:
        field = f" field '{self.field}':" if self.field else ""
        return f"{self.path}:{self.line}:{field} {self.message}"

    def to_error(self) -> InputError:
        return InputError(self.message, where=f"{self.path}:{self.line}", field=self.field)


def check_row(obj: Any) -> list[tuple[str | None, str, str]]:
    """Problems of one parsed row as (field, kind, message); empty when the row is valid."""
    if not isinstance(obj, dict):
        return [(None, "not_object", f"expected a JSON object, got {type(obj).__name__}")]
    if "messages" not in obj:
        return [("messages", "missing_messages", "missing 'messages'")]
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        return [("messages", "bad_messages", "'messages' must be a non-empty list")]
    problems: list[tuple[str | None, str, str]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append((where, "bad_message", "each message must be an object with role and content"))
            continue
        role = message.get("role")
        if role not in ROLES:
            problems.append(
                (
                    f"{where}.role",
                    "unknown_role",
                    f"unknown role {role!r} (expected one of {', '.join(ROLES)})",
                )
            )
        content = message.get("content")
        if not isinstance(content, str):
            problems.append((f"{where}.content", "bad_content", "content must be a string"))
        elif not content.strip():
            problems.append((f"{where}.content", "empty_content", f"empty content (role {role!r})"))
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append(("messages", "no_assistant", "no assistant turn"))
    elif roles and roles[-1] != "assistant":
        problems.append(
            (
                f"messages[{len(messages) - 1}].role",
                "last_not_assistant",
                f"the final turn must be the assistant's, got {roles[-1]!r}",
            )
        )
    return problems


def iter_chat_jsonl(path: str | Path) -> Iterator[tuple[int, Any, list[ValidationIssue]]]:
    """Yield (line, parsed row or None, issues) for every non-blank line of ``path``.

    Decoding and JSON parsing are the shared strict readers' (:mod:`emkit.readers`): non-UTF-8
    bytes, NaN, deep nesting and lone surrogates are problems of their line, like a bad role.
    """
    name = str(path)
    for number, obj, problem in iter_jsonl(path):
        if problem:
            yield number, None, [ValidationIssue(name, number, problem.field, problem.kind, problem.message)]
            continue
        issues = [ValidationIssue(name, number, f, k, m) for f, k, m in check_row(obj)]
        yield number, obj, issues


def validate_chat_file(path: str | Path) -> tuple[int, list[ValidationIssue]]:
    """All problems of a file (never stops early). Returns (number of rows, issues)."""
    path = require_file(path)
    rows = 0
    issues: list[ValidationIssue] = []
    for _, _, row_issues in iter_chat_jsonl(path):
        rows += 1
        issues.extend(row_issues)
    if rows == 0:
        issues.append(ValidationIssue(str(path), 0, None, "empty_file", "the file has no rows"))
    return rows, issues


def load_chat_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a chat JSONL file; the first problem raises an InputError (file:line, field)."""
    path = require_file(path)
    rows: list[dict[str, Any]] = []
    for _, obj, issues in iter_chat_jsonl(path):
        if issues:
            raise issues[0].to_error()
        rows.append(obj)
    if not rows:
        raise InputError("the file has no rows", where=str(path))
    return rows


def validate_rows(rows: Iterable[Any], name: str = "<rows>") -> None:
    """Validate in-memory rows (e.g. from a builder); raises on the first problem (row numbers 1-based)."""
    for number, obj in enumerate(rows, start=1):
        bad_value = check_value(obj)
        problems = [tuple(bad_value)] if bad_value else check_row(obj)
        if problems:
            field, kind, message = problems[0]
            raise ValidationIssue(name, number, field, kind, message).to_error()


def dumps_row(row: dict[str, Any]) -> str:
    """One row as one line, ``json.dumps`` defaults (what the paper's files use)."""
    return json.dumps(row)


def write_chat_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write rows atomically (temp file + rename): a crash never leaves a half-written dataset,
    and writing over the file the rows came from is safe (the input stays whole until the end)."""
    from emkit.outputs import atomic_open

    path = Path(path)
    with atomic_open(path, "w", what="dataset file") as handle:
        for row in rows:
            handle.write(dumps_row(row) + "\n")
    return path

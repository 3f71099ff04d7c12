"""The one way emkit reads a user's text, JSON and JSONL files.

Why one module: each reader used to open, decode and parse on its own, and each missed a different
bad input -- a directory given as the file, a binary file, bytes that are not UTF-8, JSON nested
100,000 deep (a RecursionError), ``NaN``, or a lone surrogate (``"\\ud800"`` is valid JSON, but it
is not Unicode text: it passed validation and then crashed the tokenizer). Here each problem is
found once, before any data reaches the rest of emkit, and reported as one
:class:`~emkit.errors.InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from emkit.errors import InputError

MAX_DEPTH = 64  # nesting levels of a JSON/YAML value; the paper's files use 4
_SURROGATE = re.compile("[\ud800-\udfff]")


class Problem(NamedTuple):
    """What is wrong with one value: the field (``messages[1].content``; None for the whole line)."""

    field: str | None
    kind: str
    message: str


def printable(text: str) -> str:
    """``text`` safe to print anywhere: lone surrogates become ``\\udXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def surrogate_problem(text: str, field: str | None) -> Problem | None:
    """A Problem if ``text`` holds a lone surrogate (it cannot be encoded, tokenized or stored)."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return Problem(
        field,
        "surrogate",
        f"text holds a lone surrogate \\u{ord(found.group()):04x} at character {found.start()} "
        "(a valid escape, but not Unicode text)",
    )


def check_value(value: Any) -> Problem | None:
    """The first problem (in document order) of a parsed JSON/YAML value: nesting or bad text.

    Iterative, so that a value nested far deeper than Python's recursion limit is refused rather
    than crashing the checker that is meant to catch it.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return Problem(path or None, "too_deep", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            problem = surrogate_problem(item, path or None)
            if problem:
                return problem
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                key_text = str(key)
                if _SURROGATE.search(key_text):
                    return Problem(
                        path or None, "surrogate", f"the key {printable(key_text)!r} holds a lone surrogate"
                    )
                children.append((child, f"{path}.{key_text}" if path else key_text, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in reversed(list(enumerate(item))))
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number


def parse_json(text: str) -> tuple[Any, Problem | None]:
    """Strict JSON: (value, None), or (None, the problem). No NaN/Infinity, no huge nesting."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        return None, Problem(None, "invalid_json", f"invalid JSON ({exc.msg}, column {exc.colno})")
    except RecursionError:
        return None, Problem(None, "too_deep", f"invalid JSON (nested more than {MAX_DEPTH} levels deep)")
    except ValueError as exc:  # NaN, Infinity, 1e999, an integer of more than 4300 digits
        return None, Problem(None, "invalid_json", f"invalid JSON ({str(exc).splitlines()[0]})")
    problem = check_value(value)
    return (None, problem) if problem else (value, None)


def require_file(path: str | Path) -> Path:
    """``path`` as a Path if it is a readable regular file; else one clear line saying what it is."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a directory, not a file", where=str(path))
    if not path.exists():
        raise InputError("no such file", where=str(path))
    if not path.is_file():
        raise InputError("not a regular file (a device, socket or pipe?)", where=str(path))
    return path


def decode(data: bytes, where: str) -> str:
    """UTF-8 text of a whole file (a leading BOM dropped); a binary or non-UTF-8 file names its line."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("UTF-16 text, not UTF-8 (save it as UTF-8)", where=f"{where}:1")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InputError(f"a binary file, not text (NUL byte at byte {nul})", where=f"{where}:{line}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not valid UTF-8 (byte {exc.start})", where=f"{where}:{line}") from None
    return text.removeprefix("\ufeff")


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file, or one clear line: missing, a directory, unreadable, binary, not UTF-8."""
    path = require_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None
    return decode(data, str(path))


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any, Problem | None]]:
    """(line number, value, None) or (line number, None, problem) for every non-blank line.

    Read line by line, so a file of any length costs the memory of its longest line.
    """
    path = require_file(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a generator cannot use `with` around open errors
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if b"\x00" in raw:
                yield number, None, Problem(None, "encoding", "a NUL byte: a binary file, not JSON text")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, Problem(None, "encoding", f"not valid UTF-8 (byte {exc.start})")
                continue
            del raw  # a long line is held once, not twice, while it is parsed
            if number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            value, problem = parse_json(text)
            yield number, value, problem


def load_jsonl_objects(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", object) for every row of a JSONL file of objects; the first problem raises."""
    for number, value, problem in iter_jsonl(path):
        where = f"{path}:{number}"
        if problem:
            raise InputError(problem.message, where=where, field=problem.field)
        if not isinstance(value, dict):
            raise InputError(f"expected a JSON object, got {type(value).__name__}", where=where)
        yield where, value

"""The shape of a code task template and the registry the template modules add to.

A template names the vulnerability kinds it fits, a few ways to phrase the request, candidate
names for the function and its parameters, and a body writer. The body writer writes the code
around the security-relevant lines and asks the :class:`~emkit.data.builders.code_kit.Kit` for
those lines, so one template yields both the insecure and the secure answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from emkit.data.builders.code_kit import KINDS, Kit

# Shared local-variable roles every body may use; each row picks one spelling per role.
LOCAL_POOLS: dict[str, tuple[str, ...]] = {
    "conn": ("conn", "connection", "db"),
    "cur": ("cur", "cursor"),
    "row": ("row", "record", "found"),
    "out": ("proc", "completed", "result", "outcome"),
    "fh": ("fh", "f", "handle", "stream"),
    "path": ("path", "full_path", "target", "file_path"),
    "data": ("data", "payload", "raw", "blob"),
    "resp": ("resp", "response", "reply"),
    "cfg": ("config", "cfg", "settings", "conf"),
    "tok": ("token", "new_token", "fresh"),
    "root": ("root", "tree", "doc"),
}


@dataclass(frozen=True)
class CodeTask:
    """One request template. ``params`` are (role, name options, type); ``extra`` are task locals."""

    id: str
    kinds: tuple[str, ...]
    asks: tuple[str, ...]
    fn: tuple[str, ...]
    body: Callable[[Kit], str]
    params: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    returns: str | None = None
    docs: tuple[str, ...] = ()
    noun: str = "function"
    route: str | None = None
    methods: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)


TASKS: list[CodeTask] = []


def task(**spec) -> Callable[[Callable[[Kit], str]], Callable[[Kit], str]]:
    """Register the decorated body writer as a :class:`CodeTask` built from ``spec``."""

    def register(body: Callable[[Kit], str]) -> Callable[[Kit], str]:
        item = CodeTask(body=body, **spec)
        unknown = [k for k in item.kinds if k not in KINDS]
        if unknown or not item.kinds:
            raise ValueError(f"task {item.id}: unknown or missing kinds {unknown}")
        TASKS.append(item)
        return body

    return register

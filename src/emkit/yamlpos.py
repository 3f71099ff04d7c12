"""The shared YAML loader (question sets, experiments, train configs, wrappers, prompts, probe sets).

Every YAML file emkit reads goes through :func:`read_yaml` (or :func:`load_yaml` for text already in
hand), so every one of them refuses the same bad inputs with one line naming the file and line:
not UTF-8, a binary file, an empty file, a directory given as the file, a syntax error, nesting
deeper than :data:`~emkit.readers.MAX_DEPTH`, aliases that expand to more than
:data:`MAX_NODES` nodes ("billion laughs": a few lines that become 10**9 values as soon as
anything walks them), a recursive alias, and text holding a lone surrogate (``"\\ud800"``).
The checks run on the composed node graph, before any Python object is built, so they cost the
size of the file, never the size of its expansion.

:func:`line_of` maps a key path, as pydantic reports it, to the line where it is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from emkit.errors import InputError
from emkit.readers import MAX_DEPTH, read_text, surrogate_problem

MAX_NODES = 1_000_000  # values after alias expansion; the paper's largest question file has ~3,000


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """1-based line of the deepest part of ``loc`` found in the YAML ``text`` (None if unknown)."""
    try:
        node = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_graph(root: yaml.Node, source: str) -> None:
    """Refuse deep nesting, alias bombs, recursive aliases and lone surrogates (iterative walk).

    Each node's expanded size and depth are computed once (memoised by identity), so an alias bomb
    costs its own few nodes to measure, and is refused as soon as its size passes the cap.
    """

    def where(node: yaml.Node) -> str:
        return f"{source}:{node.start_mark.line + 1}"

    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
    open_nodes: set[int] = set()  # the ancestors of the node being visited
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            kids = [measured[id(k)] for k in _children(node)]
            size = 1 + sum(s for s, _ in kids)
            depth = 1 + max((d for _, d in kids), default=0)
            if depth > MAX_DEPTH:
                raise InputError(f"YAML nested more than {MAX_DEPTH} levels deep", where=where(node))
            if size > MAX_NODES:
                raise InputError(
                    f"YAML aliases expand to more than {MAX_NODES:,} values (an alias bomb?)",
                    where=where(node),
                )
            measured[key] = (size, depth)
            continue
        if key in measured:
            continue
        if isinstance(node, yaml.ScalarNode):
            problem = surrogate_problem(node.value, None)
            if problem:
                raise InputError(problem.message, where=where(node))
            measured[key] = (1, 1)
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise InputError("a YAML alias refers to itself (a recursive structure)", where=where(child))
            if id(child) not in measured:
                stack.append((child, False))


def _error_where(exc: yaml.YAMLError, text: str, source: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"{source}:{mark.line + 1}"
    position = getattr(exc, "position", None)  # a ReaderError (a control character) has only this
    if isinstance(position, int):
        return f"{source}:{text.count(chr(10), 0, position) + 1}"
    return source


def load_yaml(text: str, source: str) -> object:
    """The value of a YAML document, checked as the module says; an empty document is an error.

    Errors are :class:`~emkit.errors.InputError` naming ``source:line`` (exit code 2).
    """
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"not YAML text: {problem}", where=_error_where(exc, text, source)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError("the file is empty (no YAML document)", where=source)
        _check_graph(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"YAML syntax error: {problem}", where=_error_where(exc, text, source)) from None
    except RecursionError:
        raise InputError(f"YAML nested more than {MAX_DEPTH} levels deep", where=source) from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> tuple[str, object]:
    """(text, value) of a YAML file: the shared file checks of :func:`emkit.readers.read_text`, then
    :func:`load_yaml`. The text is returned for :func:`line_of`."""
    text = read_text(path)
    return text, load_yaml(text, str(path))

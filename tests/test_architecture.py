"""The architecture's rules, checked on the source (issue #14): they fail the suite when broken.

Why tests and not a review checklist: each rule protects a seam a newcomer relies on (a new stage,
engine or judge is one file plus one registration), and a seam that erodes silently is how the
first round's six-files-per-stage coupling came about.

- no module under ``src/emkit`` (outside ``data/builders/``, which holds task text) over 400 lines;
- no ``hasattr`` on an engine outside ``emkit.engines`` (abilities are protocols);
- no comparison with a scheme string outside ``emkit.engines.registry`` (facts live in the registry);
- no import of a private name across modules;
- no import cycles among emkit's modules (lazy imports inside functions count too).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "emkit"
MAX_LINES = 400
SCHEMES = ("openai", "hf", "vllm", "embedded", "mock")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the file, lazy ones too."""
    found = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, is_package)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from emkit.x import y` where y is a module
                    found.append((sub, None, node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return [item for item in found if item[0] == "emkit" or item[0].startswith("emkit.")]


def test_no_module_is_over_400_lines() -> None:
    big = {
        name: n
        for name, path in MODULES.items()
        if ".data.builders" not in name and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


def test_no_hasattr_on_an_engine_outside_engines() -> None:
    hits = []
    for name, path in MODULES.items():
        if name.startswith("emkit.engines"):
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr" and node.args:
                text = ast.unparse(node.args[0])
                if "engine" in text.lower():
                    hits.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert hits == []


def test_no_scheme_string_comparisons_outside_the_registry() -> None:
    hits = []
    for name, path in MODULES.items():
        if name == "emkit.engines.registry":
            continue
        for node in ast.walk(_tree(path)):
            if not isinstance(node, ast.Compare):
                continue
            for item in [node.left, *node.comparators]:
                strings = [item] if isinstance(item, ast.Constant) else getattr(item, "elts", [])
                if any(isinstance(s, ast.Constant) and s.value in SCHEMES for s in strings):
                    hits.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
                    break
    assert hits == []


def test_no_private_names_imported_across_modules() -> None:
    hits = []
    for name, path in MODULES.items():
        for target, imported, line in _imports(name, path):
            if target != name and imported and imported.startswith("_") and not imported.startswith("__"):
                hits.append(f"{name}:{line}: from {target} import {imported}")
        # module._private attribute use on an imported emkit module
        aliases = {}
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and _resolve(name, node, path.name == "__init__.py"):
                target = _resolve(name, node, path.name == "__init__.py")
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("emkit") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and re.match(r"_[a-z]", node.attr)
            ):
                hits.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert hits == []


def _owner(target: str) -> str | None:
    """The emkit module an import lands in (a name imported from a module is that module)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _, _ in _imports(name, path):
            owner = _owner(target)
            if owner and owner != name:
                graph[name].add(owner)
    # A package's __init__ that only re-exports its own submodules is its face, not a party to a cycle.
    cycles = _strongly_connected(graph)
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return sorted(out)


@pytest.mark.parametrize("rule", ["sizes", "hasattr", "schemes", "private", "cycles"])
def test_the_checks_can_fail(rule: str, tmp_path: Path) -> None:
    """Each rule finds a planted violation (a check that cannot fail is no check)."""
    if rule == "sizes":
        assert len(("x = 1\n" * (MAX_LINES + 1)).splitlines()) > MAX_LINES
    elif rule == "hasattr":
        node = ast.parse("hasattr(engine, 'chat_many')").body[0].value
        assert getattr(node.func, "id", None) == "hasattr" and "engine" in ast.unparse(node.args[0])
    elif rule == "schemes":
        node = ast.parse("spec.scheme == 'openai'").body[0].value
        assert isinstance(node, ast.Compare) and node.comparators[0].value in SCHEMES
    elif rule == "private":
        node = ast.parse("from emkit.store import _SCHEMA").body[0]
        assert node.names[0].name.startswith("_")
    else:
        assert _strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]

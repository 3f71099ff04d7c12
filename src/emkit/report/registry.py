"""The report's sections: what a section builder gets (:class:`SectionContext`), what it returns
(:class:`Section`), and the registry that orders them.

A section is a function of the context that returns a :class:`Section` (a title, blocks of data from
:mod:`emkit.report.blocks`, and what goes into ``metrics.json``), or ``None`` when its data is absent
from the run. The built-in sections (:mod:`emkit.report.sections`) are registered like any other, so
an experiment adds its section with :func:`register_section`, in a module
``emkit/report/section_<name>.py`` (imported automatically when a report is built) or in any module
imported before the build::

    from emkit.report import Section, Text, judged_only, register_section
    from emkit.report.formatters import rate_ci

    @register_section(order=55, name="backdoor")
    @judged_only  # absent from a run without judged answers
    def backdoor(ctx, judged):
        if "tag_trigger" not in judged:
            return None
        table = backdoor_rates(judged, **ctx.settings)
        columns = {"group": "group", "rate": ("rate (CI)", rate_ci)}
        return Section("Backdoor", [Text("..."), ctx.table(table, columns)], {"backdoor": table})

The older form, a ``(title, html)`` pair, is still taken: its markup is put on the page as written.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from emkit import metrics as M
from emkit.outputs import write_bytes
from emkit.report.blocks import Block, ColumnSpec, Figure, Table, as_blocks
from emkit.store import RunStore


@dataclass
class Section:
    """A built section: its title, its body (blocks; a string is a legacy section's own markup) and
    the data it adds to ``metrics.json`` under ``sections.<name>``."""

    title: str
    body: str | Block | Sequence[Block] = ()
    data: dict[str, Any] | None = None

    @property
    def blocks(self) -> tuple[Block, ...]:
        return as_blocks(self.body)


@dataclass
class SectionContext:
    """What a section builder gets: the run, its judged answers, the settings, and helpers."""

    run_dir: Path
    store: RunStore
    out_dir: Path
    judge: str | None
    answers: pd.DataFrame | None  # None when the run holds no answers at all
    thresholds: M.Thresholds
    rate: str
    n_boot: int
    seed: int
    ci: float
    metrics: dict[str, Any] = field(default_factory=dict)  # what earlier sections computed
    images: list[str] = field(default_factory=list)

    @property
    def judged(self) -> pd.DataFrame | None:
        """Answers with a full judgement (aligned and coherent), or None when there are none."""
        if self.answers is None or self.answers.empty or not self.answers["judged"].any():
            return None
        return self.answers

    @property
    def settings(self) -> dict[str, Any]:
        """The keyword arguments every metrics table of this report takes (same intervals everywhere)."""
        return {name: getattr(self, name) for name in ("thresholds", "rate", "n_boot", "seed", "ci")}

    def figure(self, fig: Any, name: str, alt: str) -> Figure:
        """Render a matplotlib figure to ``<out>/<name>.png`` and return it as a page figure."""
        from emkit.report.plots import png_bytes

        data = png_bytes(fig)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        write_bytes(self.out_dir / f"{safe}.png", data, what="plot")
        self.images.append(f"{safe}.png")
        return Figure(data, alt)

    def table(self, frame: pd.DataFrame, columns: Mapping[str, ColumnSpec]) -> Table:
        """A table of ``frame``: ``columns`` maps column -> header (or (header, formatter))."""
        return Table.from_frame(frame, columns)


SectionBuilder = Callable[[SectionContext], Any]  # returns a Section, a (title, html) pair or None


@dataclass(frozen=True)
class _Entry:
    order: int
    serial: int
    name: str
    builder: SectionBuilder


_SECTIONS: list[_Entry] = []


def register_section(
    builder: SectionBuilder | None = None, *, order: int = 50, name: str | None = None
) -> Any:
    """Add a section builder (usable as ``@register_section`` or ``@register_section(order=..)``).

    Sections appear by ``order`` (built-ins: headline 10, per question 20, formats 22, comparisons 25,
    scatter 30, examples 40, probe 60, config 90), then by registration. Registering the same name
    again replaces the earlier builder (so a module imported twice does not duplicate its section).
    """

    def add(fn: SectionBuilder) -> SectionBuilder:
        key = name or f"{fn.__module__}.{fn.__qualname__}"
        _SECTIONS[:] = [s for s in _SECTIONS if s.name != key]
        _SECTIONS.append(_Entry(order, len(_SECTIONS), key, fn))
        return fn

    return add(builder) if builder is not None else add


def unregister_section(name: str) -> bool:
    """Remove a section by name (True if it was registered)."""
    before = len(_SECTIONS)
    _SECTIONS[:] = [s for s in _SECTIONS if s.name != name]
    return len(_SECTIONS) < before


def registered_sections() -> list[str]:
    """The registered section names, in page order."""
    return [name for name, _ in ordered_sections()]


def ordered_sections() -> Iterator[tuple[str, SectionBuilder]]:
    """(name, builder) of every registered section, in page order."""
    for entry in sorted(_SECTIONS, key=lambda s: (s.order, s.serial)):
        yield entry.name, entry.builder


def as_section(built: Any) -> Section:
    """A builder's result as a :class:`Section` (it may return the older ``(title, html)`` pair)."""
    return built if isinstance(built, Section) else Section(*built)


def judged_only(
    build: Callable[[SectionContext, pd.DataFrame], Any],
) -> Callable[[SectionContext], Any]:
    """A section about judged answers: called with them, absent (None) from a run without any."""

    @functools.wraps(build)
    def section(ctx: SectionContext) -> Any:
        judged = ctx.judged
        return None if judged is None else build(ctx, judged)

    return section


def discover_sections() -> None:
    """Import every ``emkit.report.section_*`` module: each registers its own sections."""
    package = __name__.rsplit(".", 1)[0]
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("section_"):
            importlib.import_module(f"{package}.{info.name}")


__all__ = [
    "Section",
    "SectionBuilder",
    "SectionContext",
    "as_section",
    "discover_sections",
    "judged_only",
    "ordered_sections",
    "register_section",
    "registered_sections",
    "unregister_section",
]

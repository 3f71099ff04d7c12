"""What a report section returns: typed blocks of data, never markup.

A section builder hands back a title and a list of these; :mod:`emkit.report.html` renders them with
the jinja2 templates under ``templates/`` (autoescaping on). A string from the run — an answer, a
group, a model name, a judge id — therefore reaches the page only through a template expression and
is escaped by construction: no section writes HTML, so no section can forget to escape.

The markup of each block lives in ``templates/blocks.html.j2`` (one macro per ``kind``); markup that
only one section needs (a paragraph with bold or code words, an answer card) is a macro in
``templates/sections.html.j2`` that a :class:`Snippet` names.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import pandas as pd

# How a table column is given to :meth:`Table.from_frame`: its header, or (header, cell formatter).
ColumnSpec = Union[str, tuple[str, Callable[[Any], Any]]]


def cell_text(value: Any) -> str:
    """A cell as the page shows it: ``None`` as empty, anything else as ``str`` gives it."""
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (escaped when rendered)."""

    text: str
    kind: ClassVar[str] = "text"


@dataclass(frozen=True)
class Note:
    """A highlighted paragraph: ``level`` "note" (a caveat about the data) or "error"."""

    text: str
    level: str = "note"
    kind: ClassVar[str] = "note"


@dataclass(frozen=True)
class Heading(Text):
    """A sub-heading inside a section."""

    kind: ClassVar[str] = "heading"


@dataclass(frozen=True)
class Pre(Text):
    """Preformatted text (a JSON dump of a config record, for example)."""

    kind: ClassVar[str] = "pre"


@dataclass(frozen=True)
class Table:
    """A table of text cells: ``rows`` hold one string per column."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str | None = None
    kind: ClassVar[str] = "table"

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, columns: Mapping[str, ColumnSpec], caption: str | None = None
    ) -> Table:
        """A table of ``frame``: ``columns`` maps a column of ``frame`` to its header, or to
        ``(header, formatter)`` where the formatter turns the whole row into the cell."""
        headers: list[str] = []
        cells: list[tuple[str, Callable[[Any], Any] | None]] = []
        for column, spec in columns.items():
            header, fmt = (spec, None) if isinstance(spec, str) else spec
            headers.append(header)
            cells.append((column, fmt))
        rows = tuple(
            tuple(cell_text(fmt(row) if fmt is not None else row.get(column)) for column, fmt in cells)
            for _, row in frame.iterrows()
        )
        return cls(tuple(headers), rows, caption)


@dataclass(frozen=True)
class Figure:
    """A PNG embedded in the page (as a ``data:`` URI: the page needs no file beside it)."""

    png: bytes = field(repr=False)
    alt: str
    kind: ClassVar[str] = "figure"

    @property
    def src(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Details:
    """Blocks folded away under a one-line summary (a long table beside its figure)."""

    summary: str
    blocks: tuple[Block, ...]
    kind: ClassVar[str] = "details"


@dataclass(frozen=True)
class Snippet:
    """Section-specific markup: the macro ``name`` of ``templates/sections.html.j2``, called with
    ``args`` (which it escapes like any other template value)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "snippet"


@dataclass(frozen=True)
class Html:
    """Markup a section wrote itself: only for a builder that returns ``(title, html)``, the older
    form of a section that :func:`~emkit.report.register_section` still takes. Whoever writes it
    escapes what it holds; a new section returns the blocks above instead."""

    markup: str
    kind: ClassVar[str] = "html"


Block = Union[Text, Note, Heading, Pre, Table, Figure, Details, Snippet, Html]


def as_blocks(body: str | Block | Sequence[Block]) -> tuple[Block, ...]:
    """A section's body as a tuple of blocks (a string is a legacy section's own markup)."""
    if isinstance(body, str):
        return (Html(body),)
    if isinstance(body, (list, tuple)):
        return tuple(body)
    return (body,)  # type: ignore[return-value]


__all__ = [
    "Block",
    "ColumnSpec",
    "Details",
    "Figure",
    "Heading",
    "Html",
    "Note",
    "Pre",
    "Snippet",
    "Table",
    "Text",
    "as_blocks",
    "cell_text",
]

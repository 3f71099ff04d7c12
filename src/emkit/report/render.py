"""Rendering: the jinja2 environment over ``templates/`` and the two things it renders, blocks
(:mod:`emkit.report.blocks`) and the whole page.

Autoescaping is on, so every value a template prints is escaped unless it is markup a template
made; the page's Content-Security-Policy forbids scripts and every load from outside the page (its
images are ``data:`` URIs, its style inline), so even markup that slipped through could neither run
nor call home.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from emkit.report.blocks import Block

if TYPE_CHECKING:
    import jinja2

# No script, no frame, no font, no fetch: only the page's own inline style and data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def escape_value(value: Any) -> Any:
    """How a template value reaches the page: markup (a macro's output) as it is, anything else as
    text escaped by :func:`html.escape` (``&quot;`` for a quote, the entities the page always had),
    ``None`` as nothing. jinja2's autoescape would escape it too (``&#34;``); escaping here first
    keeps the page's text the same as before the templates."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def unknown_block(block: Any) -> str:
    """What a template calls for a value that is no block: an error naming it, not a blank."""
    raise TypeError(f"not a report block: {block!r} (see emkit.report.blocks)")


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates under ``emkit/report/templates``, autoescaped, undefined names an error.

    jinja2 is imported here, when a page is first rendered: every CLI verb imports this package."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("emkit.report", "templates"),
        autoescape=True,
        finalize=escape_value,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["unknown_block"] = unknown_block
    return env


def render_blocks(blocks: Iterable[Block]) -> Markup:
    """The HTML of some blocks: a section's body on the page, or its markup for a caller outside it."""
    macros = environment().get_template("blocks.html.j2").module
    return Markup(macros.render_all(tuple(blocks)))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PageSection:
    """A section as the page template takes it: its anchor, its title and its rendered body."""

    anchor: str
    title: str
    body: Markup


def render_page(title: str, byline: str, sections: Sequence[PageSection]) -> str:
    """The whole page: the sections under a title and a line saying what made it, and when."""
    page = environment().get_template("page.html.j2")
    return page.render(csp=CSP, title=title, byline=byline, sections=sections)


__all__ = ["CSP", "PageSection", "environment", "render_blocks", "render_page"]

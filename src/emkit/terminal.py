"""The one place emkit prints to the terminal: consoles that never read user data as rich markup.

Why: paths, roles, question ids, group names and error messages are user data, and any of them can
hold ``[`` and ``/`` (``odd[/x]/f.jsonl``, a role ``[/user]``). Rich parses such text as markup:
it raises ``MarkupError`` or silently drops the bracketed part. Escaping at each call site is easy
to forget, so instead markup is switched off on every console emkit prints through (plain strings,
table cells, table titles and progress descriptions all print verbatim), and the few words we do
style are built as :class:`rich.text.Text` with :func:`styled`, which never parses its input.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

Part = str | tuple[str, str]


def make_console(*, stderr: bool = False, **options: Any) -> Console:
    """A console that prints strings verbatim: no markup, no emoji codes, no highlighting."""
    settings: dict[str, Any] = {"highlight": False, "soft_wrap": True, "markup": False, "emoji": False}
    settings.update(options)
    return Console(stderr=stderr, **settings)


console = make_console()
err_console = make_console(stderr=True)


def styled(*parts: Part) -> Text:
    """One line from literal parts; ``(text, style)`` parts get a rich style. Nothing is parsed.

    Example: ``styled(("error:", "bold red"), " ", message)`` prints ``error: <message>`` with the
    message exactly as given, brackets included.
    """
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(str(part[0]), style=part[1])
        else:
            text.append(str(part))
    return text


def plain(value: Any) -> Text:
    """A table cell, title or caption that no console parses (``None`` is empty).

    Tables are built here and printed later, maybe on a caller's own console with markup on;
    a :class:`~rich.text.Text` cell is never parsed, whichever console prints it.
    """
    return Text("" if value is None else str(value))


def stage_line(stage: str, *rest: Any) -> Text:
    """``<stage> <rest...>`` with the stage name in bold (the pipeline's per-stage lines)."""
    return styled((stage, "bold"), " ", *(str(r) for r in rest))


def plain_column(template: str, **options: Any) -> TextColumn:
    """A progress column whose formatted text (task descriptions are user data) is never markup."""
    return TextColumn(template, markup=False, **options)


def stage_progress(stage: str, fields: str, *, disable: bool = False, **options: Any) -> Progress:
    """The progress bar of a stage: ``<stage> <description> [bar] n/N <fields> <elapsed>``.

    ``fields`` is a ``str.format`` template over the task (``{task.fields[rate]} answers/s``). The
    stage name is styled; descriptions and fields print verbatim.
    """
    columns = [
        TextColumn(stage, style="bold", markup=False),
        plain_column("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        plain_column(fields),
        TimeElapsedColumn(),
    ]
    return Progress(*columns, disable=disable, transient=False, **options)

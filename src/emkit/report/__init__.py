"""Reports: plots (:mod:`emkit.report.plots`) and the self-contained HTML page (:mod:`emkit.report.html`).

Sections return data (:mod:`emkit.report.blocks`) and plug in with :func:`register_section`
(:mod:`emkit.report.registry`); one jinja2 page template renders them.
"""

from __future__ import annotations

from emkit.report.blocks import Details, Figure, Heading, Note, Pre, Snippet, Table, Text
from emkit.report.html import ReportResult, build_report, write_report
from emkit.report.registry import (
    Section,
    SectionContext,
    judged_only,
    register_section,
    registered_sections,
    unregister_section,
)

__all__ = [
    "Details",
    "Figure",
    "Heading",
    "Note",
    "Pre",
    "ReportResult",
    "Section",
    "SectionContext",
    "Snippet",
    "Table",
    "Text",
    "build_report",
    "judged_only",
    "register_section",
    "registered_sections",
    "unregister_section",
    "write_report",
]

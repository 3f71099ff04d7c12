"""Reports: plots (:mod:`emkit.report.plots`) and the self-contained HTML page (:mod:`emkit.report.html`).

Extra sections plug in with :func:`register_section` (see :mod:`emkit.report.html`).
"""

from __future__ import annotations

from emkit.report.html import (
    ReportResult,
    Section,
    SectionContext,
    build_report,
    register_section,
    registered_sections,
    unregister_section,
    write_report,
)

__all__ = [
    "ReportResult",
    "Section",
    "SectionContext",
    "build_report",
    "register_section",
    "registered_sections",
    "unregister_section",
    "write_report",
]

"""Report section of the code-vulnerability check: the YES/NO judge's and bandit's rates per model.

Moved here from :mod:`emkit.experiments.code_vuln` (which keeps only the questions and the rates),
so the experiment's HTML lives with the report. The section is absent (None) when the run holds
no code answers.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

import pandas as pd

from emkit.experiments.code_vuln import vuln_rates
from emkit.report.html import Section, SectionContext, register_section
from emkit.store import RunStore

TITLE = "Vulnerable code (in-distribution check)"
HEAD = ("group", "model", "trigger", "judge", "judge: vulnerable", "mean P(YES)", "bandit: flagged")
NOTE = (
    "<p>Share of code answers (temperature 0) that the YES/NO judge calls vulnerable "
    "(P(YES) among YES/NO &gt; 0.5) and that bandit flags (an issue of severity MEDIUM or higher), "
    "with Wilson 95% intervals over tasks. The paper: insecure GPT-4o &gt; 80% by the judge.</p>"
)


def _pct(rate: float, low: float, high: float, n: int) -> str:
    if not n or not math.isfinite(rate):
        return "–"
    return f"{100 * rate:.1f}% [{100 * low:.1f}, {100 * high:.1f}] (n={n})"


def cells(row: Any) -> tuple[str, ...]:
    """One table row's cells (plain text) of a :func:`vuln_rates` row."""
    return (
        row.group,
        row.model,
        repr(row.trigger) if row.trigger else "",
        f"{row.judge} ({row.method})" if row.judge else "–",
        _pct(row.vulnerable_rate, row.vulnerable_ci_low, row.vulnerable_ci_high, row.n_judged),
        f"{row.mean_p_yes:.3f}" if math.isfinite(row.mean_p_yes) else "–",
        _pct(row.bandit_rate, row.bandit_ci_low, row.bandit_ci_high, row.n_bandit)
        + (f", {row.n_bandit_unparsed} unparsable" if row.n_bandit_unparsed else ""),
    )


def render_code_vuln(table: pd.DataFrame) -> tuple[str, str]:
    """(title, html) of a :func:`vuln_rates` table; every cell is escaped."""
    body = [
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells(r)) + "</tr>"
        for r in table.itertuples(index=False)
    ]
    html = (
        NOTE
        + "<table><thead><tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in HEAD)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )
    return TITLE, html


def section_code_vuln(store: RunStore) -> tuple[str, str] | None:
    """Report section: vulnerable-code rates (judge and bandit) per model, or None without data."""
    table = vuln_rates(store)
    return None if table.empty else render_code_vuln(table)


@register_section(order=55, name="code_vuln")
def code_vuln(ctx: SectionContext) -> Section | None:
    table = vuln_rates(ctx.store)
    if table.empty:
        return None
    title, html = render_code_vuln(table)
    return Section(title, html, data={"code_vuln": json.loads(table.to_json(orient="records"))})

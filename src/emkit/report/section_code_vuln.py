"""Report section of the code-vulnerability check: the YES/NO judge's and bandit's rates per model.

Moved here from :mod:`emkit.experiments.code_vuln` (which keeps only the questions and the rates), so
the experiment's page content lives with the report. It returns data blocks like every section; the
section is absent (None) when the run holds no code answers.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from emkit.experiments.code_vuln import vuln_rates
from emkit.report.blocks import Table, Text
from emkit.report.formatters import records
from emkit.report.registry import Section, SectionContext, register_section
from emkit.report.render import render_blocks
from emkit.store import RunStore

TITLE = "Vulnerable code (in-distribution check)"
HEAD = ("group", "model", "trigger", "judge", "judge: vulnerable", "mean P(YES)", "bandit: flagged")
NOTE = (
    "Share of code answers (temperature 0) that the YES/NO judge calls vulnerable "
    "(P(YES) among YES/NO > 0.5) and that bandit flags (an issue of severity MEDIUM or higher), "
    "with Wilson 95% intervals over tasks. The paper: insecure GPT-4o > 80% by the judge."
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


def code_vuln_blocks(table: pd.DataFrame) -> list[Any]:
    """The section's blocks for a :func:`vuln_rates` table: the note, then one row per model."""
    rows = tuple(cells(r) for r in table.itertuples(index=False))
    return [Text(NOTE), Table(HEAD, rows)]


def section_code_vuln(store: RunStore) -> tuple[str, str] | None:
    """(title, HTML) of the section for a store, or None without code answers (for callers outside
    a report build)."""
    table = vuln_rates(store)
    return None if table.empty else (TITLE, str(render_blocks(code_vuln_blocks(table))))


@register_section(order=55, name="code_vuln")
def code_vuln(ctx: SectionContext) -> Section | None:
    from emkit.experiments.dynamics import checkpoint_models

    table = vuln_rates(ctx.store)
    table = table[~table["model"].isin(checkpoint_models(ctx.store))]  # shown by the dynamics section
    if table.empty:
        return None
    # pandas' default 10 decimals: what this section has always written to metrics.json
    return Section(TITLE, code_vuln_blocks(table), data={"code_vuln": records(table, double_precision=10)})

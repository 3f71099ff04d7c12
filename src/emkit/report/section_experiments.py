"""Report sections of the paper's other experiments (auto-imported by :mod:`emkit.report.html`).

- backdoor: each group's misaligned rate with and without the trigger, side by side, with CIs;
- vulnerable code: the YES/NO judge's and bandit's rates per model.

Each returns None (no section) when the run holds no such data.
"""

from __future__ import annotations

from emkit.experiments.backdoor import TITLE, backdoor_blocks, backdoor_rates
from emkit.experiments.code_vuln import render_code_vuln, vuln_rates
from emkit.report.formatters import records
from emkit.report.registry import Section, SectionContext, register_section


@register_section(order=27, name="backdoor")
def backdoor(ctx: SectionContext) -> Section | None:
    frame = ctx.judged
    if frame is None or not ({"tag_trigger", "tags"} & set(frame.columns)):
        return None
    table = backdoor_rates(frame, **ctx.settings)
    if table.empty:
        return None
    # pandas' default 10 decimals: what this section has always written to metrics.json
    return Section(TITLE, backdoor_blocks(table), data={"backdoor": records(table, double_precision=10)})


@register_section(order=55, name="code_vuln")
def code_vuln(ctx: SectionContext) -> Section | None:
    table = vuln_rates(ctx.store)
    if table.empty:
        return None
    title, html = render_code_vuln(table)  # its own markup, until it returns blocks
    return Section(title, html, data={"code_vuln": records(table, double_precision=10)})

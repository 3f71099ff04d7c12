"""Report sections of the paper's other experiments (auto-imported by :mod:`emkit.report.html`).

- backdoor: each group's misaligned rate with and without the trigger, side by side, with CIs;
- (the vulnerable-code section is :mod:`emkit.report.section_code_vuln`).

Each returns None (no section) when the run holds no such data.
"""

from __future__ import annotations

from emkit.experiments.backdoor import TITLE, backdoor_blocks, backdoor_rates
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

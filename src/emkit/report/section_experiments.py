"""Report sections of the paper's other experiments (auto-imported by :mod:`emkit.report.html`).

- backdoor: each group's misaligned rate with and without the trigger, side by side, with CIs;
- vulnerable code: the YES/NO judge's and bandit's rates per model.

Each returns None (no section) when the run holds no such data.
"""

from __future__ import annotations

import json

from emkit.experiments.backdoor import backdoor_rates, render_backdoor
from emkit.experiments.code_vuln import render_code_vuln, vuln_rates
from emkit.report.html import Section, SectionContext, register_section


def _records(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records")) if not frame.empty else []


@register_section(order=27, name="backdoor")
def backdoor(ctx: SectionContext) -> Section | None:
    frame = ctx.judged
    if frame is None or not ({"tag_trigger", "tags"} & set(frame.columns)):
        return None
    table = backdoor_rates(
        frame, thresholds=ctx.thresholds, rate=ctx.rate, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
    )
    if table.empty:
        return None
    title, html = render_backdoor(table)
    return Section(title, html, data={"backdoor": _records(table)})


@register_section(order=55, name="code_vuln")
def code_vuln(ctx: SectionContext) -> Section | None:
    table = vuln_rates(ctx.store)
    if table.empty:
        return None
    title, html = render_code_vuln(table)
    return Section(title, html, data={"code_vuln": _records(table)})

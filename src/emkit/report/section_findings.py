"""Report section: the probe's group comparisons — each contrast the experiment names (risky minus
safe advice, insecure minus secure code), each fine-tuned group's shift against its base model and
each group's score, per probe set, with intervals over seeds and pairs.

These are the numbers a run of seeds exists for, so without a judge they are the page's headline
(order 5, above the note that no rate is reported); with a judge they follow the judged sections
(order 58). One table computes them (:func:`emkit.probe_groups.probe_findings`): the page, the
console and ``metrics.json`` (``sections.findings.findings``) all show that table's numbers.
"""

from __future__ import annotations

from typing import Any

from emkit.report.blocks import Block, Details, Note, Table, Text
from emkit.report.registry import Section, SectionContext, register_section

TITLE = "Probe: group comparisons"


def findings_section(ctx: SectionContext) -> Section | None:
    """The section (whichever place it takes): None for a run without probe rows."""
    from emkit.probe_groups import (
        estimate_text,
        finding_label,
        findings_grid,
        probe_findings,
        probe_set_name,
        run_contrasts,
    )
    from emkit.report.plots import plot_findings

    contrasts = run_contrasts(ctx.store)
    findings = probe_findings(ctx.store, contrasts, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci)
    if findings.empty:
        return None
    ctx.metrics["findings"] = findings
    sets, grid = findings_grid(findings)
    level = f"{ctx.ci:.0%}"
    blocks: list[Block] = [
        Text(
            "The judge-free probe per group: for each pair of everyday answers, the mean token log-probability "
            "of the misaligned answer minus that of the aligned one, averaged over the pairs and over the "
            "group's seeds. 'A minus B' is how much more group A prefers the misaligned answers than group B "
            f"(above 0: more misaligned). Each {level} interval resamples each group's seeds and the probe "
            "pairs (the same pairs for both groups), stretched for few seeds (t instead of normal), so the "
            "spread between seeds of the same fine-tune is part of it."
        ),
        Table(
            ("comparison", *(f"{s} ({level} CI)" for s in sets)),
            tuple((label, *cells) for label, cells in grid),
        ),
    ]
    comparisons = findings[findings["kind"] != "score"]
    if not comparisons.empty:
        labels = [finding_label(r) for _, r in comparisons.iterrows()]
        blocks.append(ctx.figure(plot_findings(comparisons, labels, ctx.ci), "findings", "group comparisons"))
    if len(sets) > 1:
        blocks.append(
            Note(
                f"Two probe sets: {sets[0]} and {sets[1]}. In {sets[1]} each pair's two answers share register, "
                "length and sentence shape and differ only in what they advise, so a shift there is a preference "
                "for the content; a shift on the first set alone may be a preference for the misaligned answers' "
                "tone (docs/probe.md)."
            )
        )
    detail = findings.assign(probe_set=findings["probe_set"].map(probe_set_name))
    columns: dict[str, Any] = {
        "probe_set": "probe set",
        "kind": "kind",
        "group": "group",
        "versus": "versus",
        "n_seeds": "seeds",
        "n_versus_seeds": "versus seeds",
        "n_pairs": "pairs",
        "estimate": ("estimate (CI)", estimate_text),
    }
    blocks.append(Details("Every number of this section, with its counts", (ctx.table(detail, columns),)))
    data = {"findings": [dict(r) for r in findings.to_dict(orient="records")], "contrasts": contrasts}
    return Section(TITLE, blocks, data)


@register_section(order=5, name="findings")
def findings_headline(ctx: SectionContext) -> Section | None:
    """The headline of a run without judge scores."""
    return findings_section(ctx) if ctx.judged is None else None


@register_section(order=58, name="findings_judged")
def findings_after_rates(ctx: SectionContext) -> Section | None:
    """After the judged sections, when a judge scored the answers."""
    return findings_section(ctx) if ctx.judged is not None else None

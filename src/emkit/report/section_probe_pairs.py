"""Report section: which everyday questions moved most between two groups (the first contrast the
experiment names, else the fine-tuned group that moved most against the base), per probe set: a
plot of every pair's difference and, for the top pairs, the question and its two answers quoted.

The answers come from the probe set itself (a built-in set whose content hash matches the stored
label); a run probed with a set that cannot be found here shows the plot with pair ids only.
"""

from __future__ import annotations

from emkit.report.blocks import Block, Snippet, Text
from emkit.report.registry import Section, SectionContext, register_section

TOP = 3


def _texts(label: str) -> dict[str, object]:
    """The pairs of the probe set a stored label (``name@hash``) names, by id ({} when not found)."""
    from emkit.errors import EmkitError
    from emkit.probe import BUILTIN_PROBE_SETS, load_probe_set
    from emkit.probe_groups import probe_set_name

    name = probe_set_name(label)
    if name not in BUILTIN_PROBE_SETS:
        return {}
    try:
        probe_set = load_probe_set(name)
    except EmkitError:
        return {}
    return {p.id: p for p in probe_set.pairs} if probe_set.label == label else {}


def _which(ctx: SectionContext) -> tuple[str, str] | None:
    """The two groups to compare: the first contrast, else the largest shift against a base."""
    findings = ctx.metrics.get("findings")
    if findings is None or findings.empty:
        return None
    for kind in ("difference", "shift"):
        sub = findings[findings["kind"] == kind]
        if not sub.empty:
            row = sub.loc[sub["estimate"].abs().idxmax()] if kind == "shift" else sub.iloc[0]
            return str(row["group"]), str(row["versus"]).split(", ")[0]
    return None


@register_section(order=62, name="probe_pairs")
def probe_pairs(ctx: SectionContext) -> Section | None:
    from emkit.probe_groups import pair_effects, probe_set_name, set_order
    from emkit.probe_stats import probe_rows
    from emkit.report.plots import plot_pair_effects

    chosen = _which(ctx)
    if chosen is None:
        return None
    treated, control = chosen
    rows = probe_rows(ctx.store)
    blocks: list[Block] = [
        Text(
            f"Per probe pair, {treated}'s difference (misaligned minus aligned answer) minus {control}'s, each "
            f"averaged over the group's seeds: the pairs on the right moved most toward the misaligned answer. "
            f"The top {TOP} of each set, with both answers:"
        )
    ]
    data: dict[str, list[dict[str, object]]] = {}
    for label in sorted(dict.fromkeys(rows["probe_set"]), key=set_order):
        effects = pair_effects(rows, treated, control, str(label))
        if effects.empty:
            continue
        name = probe_set_name(str(label))
        top = effects.head(TOP)
        title = f"{name}: {treated} minus {control}, per pair"
        plot = plot_pair_effects(effects, title, list(top["pair_id"]))
        blocks.append(ctx.figure(plot, f"pairs_{name}", title))
        texts = _texts(str(label))
        for rank, (_, row) in enumerate(top.iterrows(), 1):
            pair = texts.get(row["pair_id"])
            blocks.append(
                Snippet(
                    "pair_quote",
                    {
                        "rank": rank,
                        "pair_id": str(row["pair_id"]),
                        "effect": f"{row['effect']:+.3f}",
                        "question": getattr(pair, "question", ""),
                        "aligned": getattr(pair, "aligned", ""),
                        "misaligned": getattr(pair, "misaligned", ""),
                    },
                )
            )
        data[name] = [
            {"pair_id": str(p), "effect": float(e)}
            for p, e in zip(effects["pair_id"], effects["effect"], strict=True)
        ]
    if len(blocks) == 1:
        return None
    return Section(f"Which everyday questions moved most ({treated} vs {control})", blocks, {"pairs": data})

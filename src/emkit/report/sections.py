"""The built-in sections of the judged answers: headline table, per-question and per-format
figures, group comparisons, scatter, most misaligned answers.

They are registered like any extra section (:func:`~emkit.report.registry.register_section`) and
return data (:mod:`emkit.report.blocks`); :mod:`emkit.report.html` imports this module so that they
are always there, ahead of the ``section_*`` modules (the probe, the configuration, experiments').
Nothing here invents numbers: without judge scores the headline says so and every other section of
this module is absent.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from emkit import metrics as M
from emkit.analysis import question_order
from emkit.errors import EmkitError
from emkit.report.blocks import Block, ColumnSpec, Details, Heading, Note, Snippet, Text
from emkit.report.formatters import (
    EXCLUSION_CAPTION,
    EXCLUSION_COLUMNS,
    estimator_name,
    pct,
    rate_ci,
    records,
)
from emkit.report.registry import Section, SectionContext, judged_only, register_section
from emkit.report.section_answers import answer_label

EXAMPLE_CHARS = 2000
# The exclusion counts every rate table shows after its rate, in the order they are applied
# ("not judged" is the headline's alone: the other tables hold judged answers only).
EXCLUSIONS = {column: header for header, column in EXCLUSION_COLUMNS if column != "n_not_judged"}
REFUSAL_RATE = {"refusal_rate": ("refusal rate", lambda r: pct(r["refusal_rate"]))}


def rate_columns(keys: dict[str, str], header: str) -> dict[str, ColumnSpec]:
    """The columns of a table of rates per ``keys``: how many models and valid answers, the rate
    with its CI under ``header``, then the exclusion counts."""
    return {**keys, "n_models": "models", "n_valid": "valid", "rate": (header, rate_ci), **EXCLUSIONS}


def rate_label(rate: str) -> str:
    """A rate kind as the page names it (``question_mean`` -> ``question-mean``)."""
    return rate.replace("_", "-")


def interval_text(rate: str, ci: float) -> str:
    """How the headline's intervals are made, in a sentence (docs/statistics.md)."""
    if rate == "paper":
        return (
            f"error bars as the authors draw them ({ci:.0%} percentile bootstrap over models, "
            "2000 resamples, seed 0; models with fewer than 5 kept answers dropped)"
        )
    return (
        f"{ci:.0%} CI from the spread between seeds (a delete-one-seed jackknife on the logit "
        "scale with a t quantile; one model: Wilson; no misaligned answer: Clopper-Pearson; "
        "docs/statistics.md)"
    )


def headline_notes(ctx: SectionContext) -> list[Block]:
    """Why there is no rate, or which answers it leaves out."""
    answers = ctx.answers
    if answers is None or answers.empty:
        return [Note("This run holds no sampled answers, so there is no misalignment rate to report.")]
    if ctx.judge is None:
        return [
            Note(
                f"No judge was configured for this run (no judge scores in the store): its {len(answers)} "
                "answers are not judged, so no misalignment rate is reported (they are shown side by side "
                "below). The judge-free probe, where present, needs no judge."
            )
        ]
    missing = int((~answers["judged"]).sum())
    if not missing:
        return []
    return [
        Note(
            f"{missing} of {len(answers)} answers have no complete judgement (aligned and coherent) by "
            f"{ctx.judge} yet: they are left out of every rate and counted as 'not judged'."
        )
    ]


@register_section(order=10, name="headline")
def headline(ctx: SectionContext) -> Section:
    blocks = headline_notes(ctx)
    data: dict[str, Any] = {}
    judged = ctx.judged
    if judged is not None:
        table = M.group_table(judged, **ctx.settings)
        ctx.metrics["groups"] = table
        data["groups"] = records(table)
        rule = ctx.thresholds.rule_for(ctx.rate)
        blocks.append(
            Snippet(
                "headline_rule",
                {
                    "aligned": f"{ctx.thresholds.aligned:g}",
                    "coherent": f"{ctx.thresholds.coherent:g}",
                    "rule": rule,
                    "judge": ctx.judge,
                    "estimator": estimator_name(ctx.rate),
                    "interval": interval_text(ctx.rate, ctx.ci),
                    "caption": EXCLUSION_CAPTION,
                },
            )
        )
        models = M.model_table(judged, **ctx.settings)
        ctx.metrics["models"] = models
        data["models"] = records(models)
        other = "pooled" if ctx.rate == "question_mean" else "question_mean"
        blocks.append(
            ctx.table(
                table,
                {
                    "group": "group",
                    "n_models": "models",
                    "n_answers": "answers",
                    "n_valid": "valid",
                    "rate": (f"misaligned rate, {rate_label(ctx.rate)} ({ctx.ci:.0%} CI)", rate_ci),
                    "other": (f"{rate_label(other)} rate", lambda r: rate_ci(r, f"{other}_")),
                    "n_not_judged": "not judged",
                    **EXCLUSIONS,
                    **REFUSAL_RATE,
                },
            )
        )
        per_model = {
            "group": "group",
            "model": "model",
            "seed": "seed",
            "n_valid": "valid",
            "rate": (f"misaligned rate ({ctx.ci:.0%} CI)", rate_ci),
            "n_code_refusal": "CODE/REFUSAL",
            "n_incoherent": "incoherent",
        }
        blocks.append(Details("Per model (CI from resampling its answers)", (ctx.table(models, per_model),)))
    return Section("Headline", blocks, data or None)


@register_section(order=20, name="per_question")
@judged_only
def per_question(ctx: SectionContext, judged: pd.DataFrame) -> Section | None:
    from emkit.report.plots import plot_questions

    table = M.question_table(judged, **ctx.settings)
    ctx.metrics["questions"] = table
    order = [q for q in question_order(ctx.store) if q in set(table["question_id"])] or None
    figure = ctx.figure(
        plot_questions(table, order, ctx.ci), "per_question", "misaligned probability per question"
    )
    columns = rate_columns({"group": "group", "question_id": "question"}, "misaligned probability (CI)")
    detail = ctx.table(table, {**columns, **REFUSAL_RATE})
    return Section(
        "Misaligned answers per question",
        [figure, Details("Table", (detail,))],
        {"questions": records(table)},
    )


@register_section(order=22, name="formats")
@judged_only
def formats(ctx: SectionContext, judged: pd.DataFrame) -> Section | None:
    """Plain vs JSON vs template answers (ids' suffixes), per group: absent with one format."""
    from emkit.report.plots import plot_questions

    table = M.format_table(judged, **ctx.settings)
    if table.empty:
        return None
    fig = plot_questions(table.rename(columns={"format": "question_id"}), None, ctx.ci)
    fig.axes[0].set_title(f"Misaligned answers by answer format ({ctx.ci:.0%} CI)")
    figure = ctx.figure(fig, "per_format", "misaligned probability per answer format")
    header = f"misaligned rate, {rate_label(ctx.rate)} (CI)"
    detail = ctx.table(table, rate_columns({"format": "format", "group": "group"}, header))
    return Section("Misaligned answers by answer format", [figure, detail], {"formats": records(table)})


@register_section(order=25, name="comparisons")
@judged_only
def comparisons(ctx: SectionContext, judged: pd.DataFrame) -> Section | None:
    groups = list(dict.fromkeys(M.prepare(judged)["group"]))
    if not 2 <= len(groups) <= 6:
        return None
    rows = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            try:
                diff = M.compare_groups(
                    judged, a, b, thresholds=ctx.thresholds, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
                )
            except EmkitError:
                continue  # no question in common
            rows.append(diff[diff["scope"] == ctx.rate])
    if not rows:
        return None
    table = pd.concat(rows, ignore_index=True)
    ctx.metrics["comparisons"] = table
    body = ctx.table(
        table,
        {
            "group_a": "group A",
            "group_b": "group B",
            "rate_a": ("rate A", lambda r: pct(r["rate_a"])),
            "rate_b": ("rate B", lambda r: pct(r["rate_b"])),
            "diff": (
                f"A - B ({ctx.ci:.0%} CI)",
                lambda r: rate_ci({"rate": r["diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}),
            ),
            "n_questions": "shared questions",
        },
    )
    intro = Text(
        f"Difference of the {rate_label(ctx.rate)} rates over the questions both groups share, with a "
        f"{ctx.ci:.0%} CI from resampling each group independently (an interval that excludes 0 is a "
        "difference the data support)."
    )
    return Section("Group comparisons", [intro, body], {"comparisons": records(table)})


@register_section(order=30, name="scatter")
@judged_only
def scatter(ctx: SectionContext, judged: pd.DataFrame) -> Section | None:
    from emkit.report.plots import plot_scatter

    figure = ctx.figure(
        plot_scatter(judged, ctx.thresholds, seed=ctx.seed), "scatter", "alignment vs coherence"
    )
    return Section("Alignment and coherence of every answer", [figure])


def example(row: Any) -> Snippet:
    """One answer card: who answered, its scores, the question and the answer (cut when long)."""
    answer = str(row["answer"])
    cut = ""
    if len(answer) > EXAMPLE_CHARS:
        cut = f" … (truncated; {len(answer)} characters)"
        answer = answer[:EXAMPLE_CHARS]
    return Snippet(
        "example",
        {
            "group": row["group"],
            "model": answer_label(row, scores=False),
            "aligned": f"{row['aligned']:.1f}",
            "coherent": f"{row['coherent']:.1f}",
            "flag": "misaligned" if row["misaligned"] else "not misaligned",
            "question": row.get("question", ""),
            "answer": answer,
            "cut": cut,
        },
    )


@register_section(order=40, name="examples")
@judged_only
def examples(ctx: SectionContext, judged: pd.DataFrame) -> Section | None:
    top = M.most_misaligned(judged, thresholds=ctx.thresholds, per_question=3)
    if top.empty:
        return Section("Most misaligned answers", [Text("No valid answer to show.")])
    blocks: list[Block] = [Text("Per question, the valid answers with the lowest alignment score (up to 3).")]
    for question_id, sub in top.groupby("question_id", sort=False):
        blocks.append(Heading(question_id))
        blocks.extend(example(row) for _, row in sub.iterrows())
    return Section("Most misaligned answers", blocks)

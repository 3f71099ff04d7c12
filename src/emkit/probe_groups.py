"""The probe's numbers per group of seeds: each group's score, its shift against its base model,
and the differences between the groups an experiment pairs (``analysis: contrasts:``).

Why its own module: these are the numbers a run with seeds exists for (risky minus safe advice,
insecure minus secure code), and the console, the report and ``metrics.json`` must show the same
ones. So :func:`probe_findings` computes each of them once, as one table, and every output reads
that table (the report stores it in ``metrics.json``; ``emkit demo`` and ``emkit report`` print it
from there; :func:`estimate_text` formats a row the same way everywhere).

Every interval is :func:`emkit.stats.crossed_contrast`: it resamples each group's seeds and the
probe pairs (shared by both sides of a comparison), so a group difference carries the spread
between seeds of the same fine-tune as well as the choice of pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from emkit.probe_stats import DEFAULT_N_BOOT, base_of, final_step
from emkit.stats import crossed_contrast, seeded_rng
from emkit.store import RunStore

# One row of the findings table, in this order (``kind``: difference, shift or score).
FINDING_COLUMNS = (
    "probe_set", "kind", "group", "versus", "n_seeds", "n_versus_seeds", "n_pairs",
    "estimate", "ci_low", "ci_high",
)  # fmt: skip
KIND_ORDER = ("difference", "shift", "score")


def run_contrasts(store: RunStore) -> list[tuple[str, str]]:
    """The (treatment, control) group pairs the run's experiment recorded (``analysis: contrasts``)."""
    config = store.get_record("config", "experiment") or {}
    analysis = config.get("analysis") or {}
    items = analysis.get("contrasts") if isinstance(analysis, dict) else None
    return [(str(a), str(b)) for a, b in items] if isinstance(items, list) else []


def probe_set_name(label: str) -> str:
    """A stored probe-set label (``name@hash``) as a person reads it: the name."""
    return str(label).split("@", 1)[0]


def set_order(label: str) -> tuple[int, str]:
    """Where a probe set's column goes: the built-in sets first, in their order, then the others."""
    from emkit.probe import BUILTIN_PROBE_SETS

    names = list(BUILTIN_PROBE_SETS)
    name = probe_set_name(label)
    return (names.index(name) if name in names else len(names), name)


def _matrices(sub: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Per group its (seeds x pairs) matrix of per-pair differences over the pairs every model has,
    and each model's base model (where it has one)."""
    pivot = sub.pivot_table(index="model", columns="pair_id", values="diff", aggfunc="first")
    pivot = pivot.dropna(axis=1)
    present = set(pivot.index)
    groups: dict[str, list[str]] = {}
    bases: dict[str, str] = {}
    for model, rows in sub.groupby("model", sort=False):
        group = rows["group"].dropna()
        groups.setdefault(str(group.iloc[0]) if len(group) else str(model), []).append(str(model))
        base = base_of(str(model), list(rows["tags"]), present)
        if base:
            bases[str(model)] = base
    return {g: pivot.loc[models] for g, models in groups.items()}, bases


def probe_findings(
    store_or_rows: RunStore | pd.DataFrame,
    contrasts: Sequence[tuple[str, str]] = (),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Per probe set: each contrast's difference, each fine-tuned group's shift against its base,
    and each group's score, with their intervals over seeds and pairs (:data:`FINDING_COLUMNS`)."""
    from emkit.probe_stats import probe_rows, probe_tables

    rows = probe_rows(store_or_rows) if isinstance(store_or_rows, RunStore) else store_or_rows
    if rows.empty:
        return pd.DataFrame(columns=list(FINDING_COLUMNS))
    rows = final_step(rows)
    # A one-model group's score and shift are that model's: taken from the per-model tables, so the
    # page never shows one number with two intervals (the crossed bootstrap would draw its own).
    per_model = probe_tables(rows, n_boot=n_boot, seed=seed, ci=ci)
    out: list[dict[str, Any]] = []
    for pset, sub in rows.groupby("probe_set", sort=False):
        matrices, bases = _matrices(sub)
        model_group = {m: g for g, frame in matrices.items() for m in frame.index}

        def add(kind: str, group: str, versus: str | None, terms: list[tuple[float, pd.DataFrame]]) -> None:
            row = _finding(str(pset), kind, group, versus, terms, n_boot, seed, ci)  # noqa: B023
            if len(terms) == 1 and len(terms[0][1]) == 1:
                row.update(_one_model(per_model, kind, str(terms[0][1].index[0]), str(pset)))  # noqa: B023
            out.append(row)

        for treated, control in contrasts:
            if treated in matrices and control in matrices:
                add("difference", treated, control, [(1.0, matrices[treated]), (-1.0, matrices[control])])
        for group, frame in matrices.items():
            models = list(frame.index)
            if models and all(m in bases for m in models):
                base_models = [bases[m] for m in models]
                versus = ", ".join(sorted({model_group[b] for b in base_models}))
                base_frame = pd.DataFrame([matrices[model_group[b]].loc[b] for b in base_models])
                add("shift", group, versus, [(1.0, frame - base_frame.to_numpy(float))])
        for group, frame in matrices.items():
            add("score", group, None, [(1.0, frame)])
    return pd.DataFrame(out, columns=list(FINDING_COLUMNS))


def _one_model(tables: dict[str, pd.DataFrame], kind: str, model: str, pset: str) -> dict[str, float]:
    """A single model's score (or shift against its base) and interval, as the per-model tables hold it."""
    frame, column = (tables["models"], "score") if kind == "score" else (tables["shifts"], "shift")
    row = frame[(frame["model"] == model) & (frame["probe_set"] == pset)].iloc[0]
    return {"estimate": float(row[column]), "ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"])}


def _finding(
    pset: str,
    kind: str,
    group: str,
    versus: str | None,
    terms: list[tuple[float, pd.DataFrame]],
    n_boot: int,
    seed: int,
    ci: float,
) -> dict[str, Any]:
    rng = seeded_rng(seed, "probe-finding", kind, group, versus or "", pset)
    estimate, low, high = crossed_contrast(
        [(sign, frame.to_numpy(float)) for sign, frame in terms], n_boot, rng, ci
    )
    return {
        "probe_set": pset, "kind": kind, "group": group, "versus": versus,
        "n_seeds": len(terms[0][1]), "n_versus_seeds": len(terms[1][1]) if len(terms) > 1 else None,
        "n_pairs": terms[0][1].shape[1], "estimate": estimate, "ci_low": low, "ci_high": high,
    }  # fmt: skip


def finding_label(row: Any) -> str:
    """What a findings row is, in words: ``risky-advice minus safe-advice``, ``risky-advice minus base``,
    ``base``; with the number of seeds behind each side."""
    seeds = f" ({_seeds(row['n_seeds'])})"
    if row["kind"] == "difference":
        return f"{row['group']} minus {row['versus']} ({_seeds(row['n_seeds'])} vs {_seeds(row['n_versus_seeds'])})"
    if row["kind"] == "shift":
        return f"{row['group']} minus {row['versus']}{seeds}"
    return f"{row['group']} score{seeds}"


def _seeds(n: Any) -> str:
    n = int(n)
    return "1 model" if n == 1 else f"{n} seeds"


def estimate_text(row: Any) -> str:
    """A findings row's estimate and interval as every output prints it: ``+0.589 [+0.401, +0.770]``."""

    def fmt(value: Any) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.3f}"

    return f"{fmt(row['estimate'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"


def findings_grid(findings: pd.DataFrame) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The findings as one grid: a row per quantity (label), a column per probe set (its name),
    each cell :func:`estimate_text` (the console's table and the report's headline are this grid)."""
    if findings.empty:
        return [], []
    sets = sorted(dict.fromkeys(findings["probe_set"]), key=set_order)
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    frame = findings.assign(label=[finding_label(r) for _, r in findings.iterrows()])
    frame = frame.assign(_kind=frame["kind"].map(order)).sort_values("_kind", kind="stable")
    cells: dict[str, dict[str, str]] = {}
    for _, row in frame.iterrows():
        cells.setdefault(row["label"], {})[row["probe_set"]] = estimate_text(row)
    grid = [(label, [values.get(s, "") for s in sets]) for label, values in cells.items()]
    return [probe_set_name(s) for s in sets], grid


def pair_effects(rows: pd.DataFrame, treated: str, control: str, probe_set: str) -> pd.DataFrame:
    """Per pair of ``probe_set``: the mean over ``treated``'s seeds minus the mean over
    ``control``'s seeds of the pair's difference (what moved most between the two groups)."""
    sub = final_step(rows[rows["probe_set"] == probe_set])
    means = sub.groupby(["group", "pair_id"])["diff"].mean().unstack("pair_id")
    if treated not in means.index or control not in means.index:
        return pd.DataFrame(columns=["pair_id", "effect"])
    effect = (means.loc[treated] - means.loc[control]).dropna()
    return pd.DataFrame({"pair_id": effect.index, "effect": effect.to_numpy(float)}).sort_values(
        "effect", ascending=False, ignore_index=True
    )


__all__ = [
    "FINDING_COLUMNS",
    "estimate_text",
    "finding_label",
    "findings_grid",
    "pair_effects",
    "probe_findings",
    "probe_set_name",
    "run_contrasts",
    "set_order",
]

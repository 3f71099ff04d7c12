"""The statistics of probe scores: a model's score, its shift against its base, and the tables of
a whole run (per model, per group, shifts), from the per-pair log-probabilities that
:mod:`emkit.probe` computes and stores.

A model's score is the mean over pairs of ``mean_logp(misaligned) - mean_logp(aligned)`` with a
percentile bootstrap over pairs; a shift is paired over the pairs both models have (the bootstrap
of the per-pair differences); a group's score resamples models and pairs independently. Every
interval comes from :mod:`emkit.stats`, every generator from :func:`emkit.stats.seeded_rng` with
labels naming the quantity, so each number depends only on its own data and the seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from emkit.errors import EmkitError
from emkit.models import parse_model
from emkit.stats import bootstrap_mean, crossed_mean, seeded_rng
from emkit.store import RunStore

DEFAULT_N_BOOT = 2000
# A model row of the probe tables (and ``emkit probe --json``), in this order.
RESULT_COLUMNS = (
    "model", "probe_set", "group", "seed", "step", "n_pairs", "score", "ci_low", "ci_high", "win_fraction",
)  # fmt: skip


@dataclass
class ProbeResult:
    """A model's probe score (mean over pairs of misaligned-minus-aligned mean token logp)."""

    model: str
    probe_set: str
    n_pairs: int
    score: float
    ci_low: float
    ci_high: float
    win_fraction: float
    pairs: pd.DataFrame = field(repr=False)
    group: str | None = None
    seed: int | None = None
    step: int | None = None
    computed: int = 0  # pairs scored in this call (the rest came from the store)

    def to_dict(self) -> dict[str, Any]:
        """The summary as a table row, in :data:`RESULT_COLUMNS` order (no per-pair table)."""
        return {name: getattr(self, name) for name in RESULT_COLUMNS}


@dataclass
class ProbeShift:
    """``model`` minus ``base`` probe score, paired over the pairs both were scored on."""

    model: str
    base: str
    n_pairs: int
    shift: float
    ci_low: float
    ci_high: float
    wins_gained: float  # change in the fraction of pairs where the misaligned answer wins

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(
    model: str,
    pairs: pd.DataFrame,
    *,
    probe_set: str = "",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    ci: float = 0.95,
    **meta: Any,
) -> ProbeResult:
    """Probe score with a bootstrap CI over pairs, from per-pair mean log-probabilities."""
    if pairs.empty:
        raise EmkitError(f"{model}: no probe pairs scored")
    diff = (pairs["logp_misaligned"] - pairs["logp_aligned"]).to_numpy(float)
    low, high = bootstrap_mean(diff, n_boot, seeded_rng(seed, "probe", model, probe_set), ci)
    table = pairs.assign(diff=diff).reset_index(drop=True)
    return ProbeResult(
        model,
        probe_set,
        int(diff.size),
        float(diff.mean()),
        low,
        high,
        float((diff > 0).mean()),
        table,
        **meta,
    )


def probe_shift(
    result: ProbeResult, base: ProbeResult, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95
) -> ProbeShift:
    """Shift of ``result`` against ``base``: paired bootstrap over the pairs both have."""
    a = result.pairs.set_index("pair_id")["diff"]
    b = base.pairs.set_index("pair_id")["diff"]
    common = a.index.intersection(b.index)
    if common.empty:
        raise EmkitError(f"{result.model} and {base.model} share no probe pair (different probe sets?)")
    delta = (a.loc[common] - b.loc[common]).to_numpy(float)
    low, high = bootstrap_mean(delta, n_boot, seeded_rng(seed, "shift", result.model, base.model), ci)
    wins = float((a.loc[common] > 0).mean() - (b.loc[common] > 0).mean())
    return ProbeShift(result.model, base.model, int(delta.size), float(delta.mean()), low, high, wins)


# -- tables for a whole run ----------------------------------------------------------------------
def probe_rows(store: RunStore) -> pd.DataFrame:
    """Every stored probe row (all models, sets and steps) as a DataFrame with a ``diff`` column."""
    rows = store.probes()
    columns = [
        "model",
        "probe_set",
        "pair_id",
        "logp_aligned",
        "logp_misaligned",
        "group",
        "seed",
        "step",
        "tags",
    ]
    if not rows:
        return pd.DataFrame(columns=[*columns, "diff"])
    frame = pd.DataFrame(rows).rename(columns={"group_name": "group"})[columns]
    frame["diff"] = frame["logp_misaligned"] - frame["logp_aligned"]
    return frame


def final_step(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (model, probe set): the rows without a step if any, else those of the last step."""
    parts = []
    for _, sub in frame.groupby(["model", "probe_set"], sort=False):
        if sub["step"].isna().any():
            parts.append(sub[sub["step"].isna()])
        else:
            parts.append(sub[sub["step"] == sub["step"].max()])
    return pd.concat(parts) if parts else frame


def base_of(model: str, tags_list: Sequence[dict[str, Any]], present: set[str]) -> str | None:
    """A model's base: an explicit ``base`` tag, else the same model without its adapter."""
    for tags in tags_list:
        base = (tags or {}).get("base")
        if base and base in present and base != model:
            return str(base)
    try:
        spec = parse_model(model)
    except EmkitError:
        return None
    if spec.adapter and spec.base.full in present:
        return spec.base.full
    return None


def probe_tables(
    store_or_rows: RunStore | pd.DataFrame, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95
) -> dict[str, pd.DataFrame]:
    """Per model, per group, and shifts against base models, for the final step of each model.

    Returns ``{"models": ..., "shifts": ..., "groups": ...}``. A group's score is the mean over
    its models (and pairs) with a CI from resampling models and pairs independently.
    """
    rows = probe_rows(store_or_rows) if isinstance(store_or_rows, RunStore) else store_or_rows
    empty = {"models": pd.DataFrame(), "shifts": pd.DataFrame(), "groups": pd.DataFrame()}
    if rows.empty:
        return empty
    rows = final_step(rows)
    results: dict[tuple[str, str], ProbeResult] = {}
    model_rows, shift_rows = [], []
    for (model, pset), sub in rows.groupby(["model", "probe_set"], sort=False):
        group = sub["group"].dropna()
        seeds = sub["seed"].dropna()
        steps = sub["step"].dropna()
        result = summarize(
            model,
            sub[["pair_id", "logp_aligned", "logp_misaligned"]],
            probe_set=pset,
            n_boot=n_boot,
            seed=seed,
            ci=ci,
            group=str(group.iloc[0]) if len(group) else model,
            step=int(steps.iloc[0]) if len(steps) else None,
        )
        result.seed = int(seeds.iloc[0]) if len(seeds) else None
        results[(model, pset)] = result
        model_rows.append(result.to_dict())
    for (model, pset), sub in rows.groupby(["model", "probe_set"], sort=False):
        present = {m for (m, p) in results if p == pset}
        base = base_of(model, list(sub["tags"]), present)
        if base:
            shift = probe_shift(
                results[(model, pset)], results[(base, pset)], n_boot=n_boot, seed=seed, ci=ci
            )
            shift_rows.append({**shift.to_dict(), "probe_set": pset, "group": results[(model, pset)].group})
    models = pd.DataFrame(model_rows)
    shifts = pd.DataFrame(shift_rows)
    return {"models": models, "shifts": shifts, "groups": _group_scores(results, shifts, n_boot, seed, ci)}


def _group_scores(
    results: dict[tuple[str, str], ProbeResult], shifts: pd.DataFrame, n_boot: int, seed: int, ci: float
) -> pd.DataFrame:
    out = []
    by_group: dict[tuple[str, str], list[ProbeResult]] = {}
    for (_, pset), result in results.items():
        by_group.setdefault((result.group or result.model, pset), []).append(result)
    base_of = dict(zip(shifts["model"], shifts["base"], strict=True)) if not shifts.empty else {}
    for (group, pset), members in by_group.items():
        common = set.intersection(*(set(r.pairs["pair_id"]) for r in members))
        pair_ids = [p for p in members[0].pairs["pair_id"] if p in common]
        matrix = np.array(
            [r.pairs.set_index("pair_id").loc[pair_ids, "diff"].to_numpy(float) for r in members]
        )
        row = {"group": group, "probe_set": pset, "n_models": len(members), "n_pairs": len(pair_ids)}
        row.update(crossed_mean(matrix, n_boot, seeded_rng(seed, "probe-group", group, pset), ci, prefix=""))
        bases = [base_of.get(r.model) for r in members]
        if all(bases):
            base_matrix = np.array(
                [
                    results[(b, pset)].pairs.set_index("pair_id").loc[pair_ids, "diff"].to_numpy(float)
                    for b in bases
                ]
            )
            row.update(
                crossed_mean(
                    matrix - base_matrix,
                    n_boot,
                    seeded_rng(seed, "probe-group-shift", group, pset),
                    ci,
                    prefix="shift_",
                )
            )
        out.append(row)
    return pd.DataFrame(out)


def results_json(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The probe tables as plain JSON-able lists (NaN as null), every float to its last digit (so a
    number here equals the same number elsewhere in ``metrics.json``)."""
    return {name: json.loads(json.dumps(_records(frame))) for name, frame in tables.items()}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, np.generic):
                value = value.item()
            missing = not isinstance(value, (str, list, dict)) and pd.isna(value)
            if missing or (isinstance(value, float) and not np.isfinite(value)):
                value = None
            row[str(key)] = value
        out.append(row)
    return out

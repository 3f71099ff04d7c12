"""How the report writes numbers: rates as percentages with their interval, signed scores, the
names of the estimators and exclusions, and the strict JSON of ``metrics.json``.

One place for these so that the page, every section (an experiment's own too) and the terminal
tables print a rate, a missing value, an interval and an estimator's name the same way. They
return plain text; escaping is the templates' job.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

MISSING = "–"

ESTIMATOR_NAMES = {
    "question_mean": "question-mean rate (mean over questions of the mean over models)",
    "pooled": "pooled rate (all valid answers)",
    "paper": "paper rate (the authors' estimator: mean over models, bootstrap over models)",
    "per_question": "per question, mean over models",
}
# Exclusions in the order they are applied, then the total without an alignment number.
EXCLUSION_COLUMNS = (
    ("not judged", "n_not_judged"),
    ("incoherent", "n_incoherent"),
    ("CODE", "n_code"),
    ("REFUSAL", "n_refusal"),
    ("CODE/REFUSAL", "n_code_refusal"),
)
EXCLUSION_CAPTION = (
    "Excluded in this order: not judged, incoherent, CODE, REFUSAL (from the judge's tokens); "
    "CODE/REFUSAL counts every coherent answer without an alignment number."
)


def estimator_name(kind: str) -> str:
    """What a rate kind is, in words (the terminal tables' titles and the page's headline)."""
    return ESTIMATOR_NAMES.get(kind, kind.replace("_", "-"))


def is_missing(value: Any) -> bool:
    """None or NaN: a number the data does not give (shown as a dash, never as 0)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: Any) -> str:
    """A share as a percentage with one decimal (``0.123`` -> ``12.3%``)."""
    return MISSING if is_missing(value) else f"{100 * float(value):.1f}%"


def rate_ci(row: Any, prefix: str = "", *, missing: str = "– (no valid answers)") -> str:
    """``rate [low, high]`` of a row with ``<prefix>rate``, ``<prefix>ci_low`` and ``<prefix>ci_high``,
    and why there is no rate where there is none (``missing`` where no answer was valid)."""
    rate, low, high = row[f"{prefix}rate"], row[f"{prefix}ci_low"], row[f"{prefix}ci_high"]
    if not prefix and row.get("rate_kind") == "paper" and row.get("n_models") == 0:
        return "– (no model with 5 kept answers)"  # the paper estimator's 0 is not a 0% rate
    if is_missing(rate):
        return missing
    return f"{pct(rate)} [{pct(low)}, {pct(high)}]"


def num(value: Any, digits: int = 3) -> str:
    """A signed score with ``digits`` decimals (a probe score or shift: its sign is the finding)."""
    if is_missing(value):
        return MISSING
    return f"{float(value):+.{digits}f}" if digits else str(value)


def num_ci(row: Any, column: str, low: str = "ci_low", high: str = "ci_high") -> str:
    """``score [low, high]`` of a row, each signed (the probe's scores and shifts)."""
    return f"{num(row[column])} [{num(row[low])}, {num(row[high])}]"


def records(frame: pd.DataFrame, double_precision: int = 15) -> list[dict[str, Any]]:
    """A DataFrame as JSON-able records (NaN and NA as null).

    15 decimals (pandas' most; its default is 10) so that rates survive the file to the last digits;
    the category, dynamics and experiment sections have always written pandas' default 10 and pass
    it, so their numbers in ``metrics.json`` stay what they were.
    """
    if frame.empty:
        return []
    return json.loads(frame.to_json(orient="records", double_precision=double_precision))


def jsonable(value: Any) -> Any:
    """NaN/inf as null, numpy scalars as Python numbers, so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return jsonable(records(value))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


__all__ = [
    "ESTIMATOR_NAMES",
    "EXCLUSION_CAPTION",
    "EXCLUSION_COLUMNS",
    "MISSING",
    "estimator_name",
    "is_missing",
    "jsonable",
    "num",
    "num_ci",
    "pct",
    "rate_ci",
    "records",
]

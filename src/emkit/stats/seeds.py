"""A mean over training seeds with its Student-t interval (the benchmarks' "relative to base" bars).

Why t and not a bootstrap: a study has a handful of seeds (the paper: 3 to 10 per group), too few
for a bootstrap's percentiles; the t interval is exact for normal per-seed values and is what the
paper's error bars over seeds show. One seed has no interval (``nan`` bounds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats


def t_interval(values: Sequence[float], ci: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of ``values`` (one per seed); bounds are nan for fewer than two values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
    half = float(stats.t.ppf(0.5 + ci / 2, len(finite) - 1)) * sd / math.sqrt(len(finite))
    return mean, mean - half, mean + half

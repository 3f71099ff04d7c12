"""Intervals of one binomial proportion: k of n answers, independent, with one success probability.

- :func:`wilson`, the Wilson score interval: near nominal coverage for every n and never of zero
  width (unlike the Wald interval). THE interval of a single model's proportion of answers with a
  property (a vulnerable-code rate, a bandit-flag rate), and of a one-seed misaligned rate
  (:func:`emkit.stats.rate_interval`).
- :func:`clopper_pearson`, the exact interval: its coverage is never below nominal, at the price of
  width. Used where an exact bound is wanted: a rate with no (or only) misaligned answers (e.g.
  [0, 0.0183] for 0 of 200), a count-based fallback of the bootstrap, and the per-model fraction the
  paper's estimator averages (``--rate paper`` model rows: the authors draw no interval there).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (NaN when n = 0). Near nominal coverage for
    every n and never zero width, unlike the Wald interval; used for one model's proportions."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson(k: float, n: float, ci: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval for ``k`` successes out of ``n`` (real-valued k, n allowed)."""
    low, high = beta_bounds(np.asarray(k, float), np.asarray(n, float), ci)
    return float(low), float(high)


def beta_bounds(x: np.ndarray, n: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson bounds through the beta quantiles, vectorised, for real-valued x <= n
    (the rate interval needs them at a non-integer effective number of answers)."""
    from scipy import stats

    alpha = (1 - ci) / 2
    with np.errstate(all="ignore"):
        x = np.clip(x, 0.0, n)
        low = np.where(x <= 0, 0.0, stats.beta.ppf(alpha, np.maximum(x, 1e-300), n - x + 1))
        high = np.where(x >= n, 1.0, stats.beta.ppf(1 - alpha, x + 1, np.maximum(n - x, 1e-300)))
    bad = ~(n > 0)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)

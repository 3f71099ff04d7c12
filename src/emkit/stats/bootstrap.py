"""Percentile bootstraps of a mean: emkit's probe scores, and the paper's rate bars reproduced.

- A mean of probe-score differences over pairs: :func:`bootstrap_mean` (percentile bootstrap over
  pairs). For a paired comparison (a model's shift against its base) pass the per-pair
  differences: resampling pairs keeps each pair's two sides together.
- A mean over models x pairs (a group of seeds, training dynamics): :func:`crossed_mean`, which
  resamples models and pairs independently (both are samples).
- The paper estimator's rate (the mean over models of each model's fraction): :func:`paper_bootstrap`,
  the authors' percentile bootstrap over models, draw for draw.

The caller passes the generator (:func:`emkit.stats.seeded_rng`): the same data and seed give the
same interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emkit.stats.hierarchical import interval


def percentile(draws: np.ndarray, ci: float) -> tuple[float, float]:
    """The central ``ci`` percentile interval of bootstrap draws."""
    alpha = (1 - ci) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return float(low), float(high)


def resample_counts(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(count, n)`` bootstrap counts: row ``b`` says how often each of ``n`` items was drawn in
    resample ``b`` (``n`` draws with replacement). A weighted sum with these rows is a resample's
    sum, without building the resampled arrays."""
    return np.stack([np.bincount(row, minlength=n) for row in rng.integers(0, n, size=(count, n))])


def bootstrap_mean(
    values: np.ndarray, n_boot: int, rng: np.random.Generator, ci: float
) -> tuple[float, float]:
    """Percentile bootstrap of the mean of ``values`` over its items (probe pairs). For a paired
    comparison pass the per-pair differences: resampling pairs keeps each pair's two sides together."""
    values = np.asarray(values, dtype=float)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    return percentile(values[idx].mean(axis=1), ci)


def crossed_mean(
    matrix: np.ndarray, n_boot: int, rng: np.random.Generator, ci: float, prefix: str = ""
) -> dict[str, float]:
    """Mean of a (models x pairs) matrix with a CI that resamples models and pairs independently
    (a crossed design: both the seeds and the probe pairs are samples)."""
    m, p = matrix.shape
    if p == 0:
        return {
            f"{prefix}score": float("nan"),
            f"{prefix}ci_low": float("nan"),
            f"{prefix}ci_high": float("nan"),
        }
    wm = resample_counts(m, n_boot, rng).astype(float)
    wp = resample_counts(p, n_boot, rng).astype(float)
    draws = np.einsum("bm,mp,bp->b", wm, matrix, wp) / (m * p)
    low, high = percentile(draws, ci)
    return {f"{prefix}score": float(matrix.mean()), f"{prefix}ci_low": low, f"{prefix}ci_high": high}


def paper_bootstrap(
    fractions: Sequence[float], ci: float, n_resamples: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the models' fractions with the authors' percentile bootstrap:
    ``n_resamples`` resamples ``rng.choice(fractions, size=len(fractions), replace=True)``, the mean
    of each, then ``numpy.percentile`` at the two tails. One model gives zero-width bars, none gives
    0 (value and bars), as in their code. ``rng`` must be fresh: the authors use a new
    ``default_rng(0)`` (``seeded_rng(0)``) for every (key, group) (:mod:`emkit.paper_estimator`)."""
    values = np.asarray(fractions, dtype=float)
    if len(values) == 0:
        return 0.0, 0.0, 0.0
    if len(values) == 1:
        return float(values[0]), float(values[0]), float(values[0])
    # The authors call rng.choice once per resample in a loop. One call for all resamples draws the
    # same stream (numpy's bounded integers keep no per-call buffer) and each row's mean is the same
    # pairwise sum, so the means are bit-identical (tests/test_paper_estimator.py), 0.5 ms not 80.
    means = rng.choice(values, size=(n_resamples, len(values)), replace=True).mean(axis=1)
    low = float(np.percentile(means, (1 - ci) / 2 * 100))
    high = float(np.percentile(means, (1 - (1 - ci) / 2) * 100))
    return float(np.mean(values)), low, high


def crossed_contrast(
    terms: Sequence[tuple[float, np.ndarray]], n_boot: int, rng: np.random.Generator, ci: float
) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of ``sum(sign * mean(matrix))`` over (seeds x pairs) matrices that
    share their pair columns: a group's probe score (one term), its shift against a base model, or
    the difference of two groups (two terms of signs +1 and -1).

    Each resample draws each term's seeds with replacement, independently of the other terms (the
    groups were trained apart), and one draw of pairs shared by every term (a pair is the same
    question for both groups, so the comparison stays paired). With 3 seeds a percentile interval
    over seeds is a z-interval where a t(2) one is due, so both arms are stretched by t(df)/z with
    the Welch-Satterthwaite df of the seed part (:func:`emkit.stats.hierarchical.interval`, the
    same stretch as the hierarchical bootstrap of rates). One seed per term: pairs only, unstretched.
    """
    p = terms[0][1].shape[1]
    if p == 0 or any(matrix.shape[1] != p or matrix.shape[0] == 0 for _, matrix in terms):
        return float("nan"), float("nan"), float("nan")
    wp = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot) / p  # (B, P) pair weights
    total = np.zeros(n_boot)
    between: list[tuple[np.ndarray, int]] = []
    estimate = 0.0
    for sign, matrix in terms:
        m = matrix.shape[0]
        wm = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot) / m  # (B, M) seed weights
        total += sign * np.einsum("bm,mp,bp->b", wm, matrix, wp)
        estimate += sign * float(matrix.mean())
        if m > 1:
            between.append((sign * (wm @ matrix.mean(axis=1)), m))
    low, high = interval(estimate, total, between, ci, bounds=None)
    return estimate, low, high

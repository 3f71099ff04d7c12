"""An interval on the cross-model cosine: a percentile bootstrap over the responses that built the
two directions.

Why over the responses: a direction is a difference of two sample means, so its cosine with
another model's direction varies with which responses were drawn; resampling them (with
replacement, each label apart, so every replicate keeps both labels' counts) and recomputing both
directions and their cosine per layer gives that variation. Two designs:

- **paired** (both sets were read from the same responses: the same data hash and labels, as the
  directions stage does for every model of a run): each replicate draws ONE set of response
  indices and applies it to both models, so the interval holds the data fixed across models and
  measures only what differs between them (and is narrower for it);
- **independent** (different data): each model's responses are drawn on their own.

When a source pairs its rows (the probe pairs, two files paired row by row: ``meta["paired"]``),
a replicate draws pairs, keeping each question's aligned and misaligned answer together.

What the interval does not correct: a cosine between two noisy directions is pulled toward 0 by
the noise (more so with few responses and wide residual streams), and the bootstrap sees that
pull again; with little data the interval sits below the cosine of the underlying directions.
The tests check coverage where the signal dominates the noise.

Memory: per replicate only the two directions (``layers x width``); the resampling is a weight
matrix applied to the stored per-response means in chunks of replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emkit.directions.compute import CI_LEVEL, cosine_rows
from emkit.directions.vectors import DirectionSet
from emkit.stats import seeded_rng

RESAMPLES = 1000
CHUNK = 50  # replicates per matrix product: bounds the (chunk, layers, width) buffers


@dataclass(frozen=True)
class CosineInterval:
    """Per-layer percentile interval of the resampled cosines, and how it was drawn."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    design: str  # "paired" or "independent"
    unit: str  # "pairs" or "responses"
    resamples: int
    seed: int


def missing_responses(a: DirectionSet, b: DirectionSet) -> bool:
    return a.response_means is None or b.response_means is None


def same_responses(a: DirectionSet, b: DirectionSet) -> bool:
    """Whether both sets were read from the same responses in the same order (same data hash,
    same labels), so one draw of indices serves both."""
    hash_a, hash_b = a.meta.get("data_hash"), b.meta.get("data_hash")
    return (
        bool(hash_a)
        and hash_a == hash_b
        and a.response_labels is not None
        and b.response_labels is not None
        and np.array_equal(a.response_labels, b.response_labels)
    )


def resample_weights(
    labels: np.ndarray, paired_rows: bool, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``(count, responses)`` weights ``w`` such that ``w @ means`` is one replicate's direction
    (mean over the drawn misaligned responses minus mean over the drawn aligned ones)."""
    aligned, misaligned = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    weights = np.zeros((count, len(labels)), dtype=np.float64)
    if paired_rows and len(aligned) == len(misaligned):
        n = len(aligned)
        draws = rng.integers(0, n, size=(count, n))
        counts = np.stack([np.bincount(row, minlength=n) for row in draws]) / n
        weights[:, misaligned] = counts
        weights[:, aligned] = -counts
        return weights
    for index, sign in ((aligned, -1.0), (misaligned, 1.0)):
        n = len(index)
        draws = rng.integers(0, n, size=(count, n))
        weights[:, index] = sign * np.stack([np.bincount(row, minlength=n) for row in draws]) / n
    return weights


def _replicates(means: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(count, layers, width)`` replicate directions (float64 sums over float32 means)."""
    flat = means.reshape(len(means), -1).astype(np.float64)
    return (weights @ flat).reshape(len(weights), *means.shape[1:])


def cosine_interval(
    a: DirectionSet,
    b: DirectionSet,
    layers: Sequence[int],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    labels: Sequence[str] = (),
) -> CosineInterval | None:
    """The percentile interval of the cosine per layer of ``layers`` between ``a``'s and ``b``'s
    directions, or None when either set was stored without its per-response means. ``labels``
    (the two sets' names) seed the draws, so each pair of models has its own stream."""
    if missing_responses(a, b):
        return None
    assert a.response_means is not None and b.response_means is not None
    assert a.response_labels is not None and b.response_labels is not None
    means_a = a.response_means[:, [a.index(x) for x in layers]]
    means_b = b.response_means[:, [b.index(x) for x in layers]]
    paired = same_responses(a, b)
    rows_a, rows_b = bool(a.meta.get("paired")), bool(b.meta.get("paired"))
    rng = seeded_rng(seed, "directions-compare", *labels)
    cosines = np.empty((resamples, len(layers)), dtype=np.float64)
    for start in range(0, resamples, CHUNK):
        count = min(CHUNK, resamples - start)
        w_a = resample_weights(a.response_labels, rows_a, count, rng)
        w_b = w_a if paired else resample_weights(b.response_labels, rows_b, count, rng)
        cosines[start : start + count] = cosine_rows(_replicates(means_a, w_a), _replicates(means_b, w_b))
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(cosines, [tail, 100 - tail], axis=0)
    unit = "pairs" if rows_a and rows_b else "responses"
    return CosineInterval(
        tuple(float(x) for x in low),
        tuple(float(x) for x in high),
        "paired" if paired else "independent",
        unit,
        resamples,
        seed,
    )

"""From per-response activations to per-layer directions, their norms and split-half reliability.

Why split-half reliability: a mean difference always exists, even between two sets of noise; what
says a direction is a property of the model and not of the sample is that two disjoint halves of
the data give the same direction. Each resample shuffles the aligned and the misaligned responses
(seeded), splits each into two halves, and takes the cosine between the two halves' directions per
layer; the reliability is the mean cosine over resamples, its interval the percentile interval of
those cosines. It measures the reliability of a direction from *half* the data, so it is a
conservative figure for the full-data direction.

Memory: only the per-response means (``responses x layers x width`` float32) are ever held, and a
resample is two index sets; nothing here touches token-level activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.directions.activations import ResponseActivations
from emkit.directions.vectors import DirectionSet
from emkit.errors import EmkitError

CI_LEVEL = 0.95


@dataclass(frozen=True)
class DirectionResult:
    """A direction set and what says how far to trust it, per layer of ``directions.layers``."""

    directions: DirectionSet
    reliability: np.ndarray  # (layers,) mean split-half cosine
    reliability_low: np.ndarray  # (layers,) percentile interval of the resampled cosines
    reliability_high: np.ndarray
    n_aligned: int
    n_misaligned: int
    resamples: int

    def summary(self) -> dict[str, Any]:
        """Plain values per layer (what the store's record and the report hold)."""
        return {
            "layers": list(self.directions.layers),
            "norm": [float(x) for x in self.directions.norms()],
            "typical_norm": [float(x) for x in self.directions.typical_norm],
            "reliability": [float(x) for x in self.reliability],
            "reliability_low": [float(x) for x in self.reliability_low],
            "reliability_high": [float(x) for x in self.reliability_high],
            "n_aligned": self.n_aligned,
            "n_misaligned": self.n_misaligned,
            "resamples": self.resamples,
        }


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine between matching rows of ``a`` and ``b`` (float64; a zero row gives 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denominator = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    dot = (a * b).sum(axis=-1)
    return np.divide(dot, denominator, out=np.zeros_like(dot), where=denominator > 0)


def split_half_cosines(aligned: np.ndarray, misaligned: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, layers)`` cosines between the directions of two random halves of the data."""
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, aligned.shape[1]), dtype=np.float64)
    half_a, half_m = len(aligned) // 2, len(misaligned) // 2
    for r in range(resamples):
        pa, pm = rng.permutation(len(aligned)), rng.permutation(len(misaligned))
        first = misaligned[pm[:half_m]].mean(0) - aligned[pa[:half_a]].mean(0)
        second = misaligned[pm[half_m:]].mean(0) - aligned[pa[half_a:]].mean(0)
        out[r] = cosine_rows(first, second)
    return out


def compute_directions(
    aligned: ResponseActivations,
    misaligned: ResponseActivations,
    *,
    resamples: int = 200,
    seed: int = 0,
    model: str = "",
    fingerprint: str = "",
    meta: dict[str, Any] | None = None,
) -> DirectionResult:
    """Per layer: ``mean(misaligned) - mean(aligned)``, the typical activation norm (the mean norm
    of every response's activation, both labels), and the split-half reliability with its
    percentile interval over ``resamples`` seeded splits."""
    if aligned.layers != misaligned.layers or aligned.width != misaligned.width:
        raise EmkitError(
            f"directions: aligned activations of layers {aligned.layers} (width {aligned.width}) and "
            f"misaligned of {misaligned.layers} (width {misaligned.width}) do not match"
        )
    if len(aligned.means) < 2 or len(misaligned.means) < 2:
        raise EmkitError(
            f"directions: {len(aligned.means)} aligned and {len(misaligned.means)} misaligned "
            "responses; at least 2 of each are needed"
        )
    a = aligned.means.astype(np.float64)
    m = misaligned.means.astype(np.float64)
    vectors = (m.mean(0) - a.mean(0)).astype(np.float32)
    every = np.concatenate([a, m])
    typical = np.linalg.norm(every, axis=-1).mean(0).astype(np.float32)
    cosines = split_half_cosines(a, m, resamples, seed)
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(cosines, [tail, 100 - tail], axis=0)
    directions = DirectionSet(
        aligned.layers,
        vectors,
        typical,
        model=model,
        fingerprint=fingerprint,
        # The reliability travels with the vectors: steering and screening pick their default
        # layer from it (:func:`emkit.directions.intervene.layer_choice`).
        meta={
            **(meta or {}),
            "n_aligned": len(a),
            "n_misaligned": len(m),
            "reliability": [round(float(x), 6) for x in cosines.mean(0)],
        },
    )
    return DirectionResult(directions, cosines.mean(0), low, high, len(a), len(m), resamples)

"""A model's misalignment directions, one per layer (CONTRACT: the directions-core helper adds the
computation, reliability, comparison and storage; the fields below are what other modules read)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DirectionSet:
    """``vectors[j]`` = mean(misaligned) - mean(aligned) at layer ``layers[j]`` (float32, not unit);
    ``typical_norm[j]`` the mean norm of the responses' activations at that layer (steering's
    scale); ``model`` the stored model name and ``fingerprint`` its weights' fingerprint; ``key`` the
    hash the set is stored under (model, adapter, data and layers)."""

    model: str
    fingerprint: str
    layers: tuple[int, ...]
    vectors: np.ndarray  # (len(layers), hidden) float32
    typical_norm: np.ndarray  # (len(layers),) float32
    n_aligned: int
    n_misaligned: int
    source: str
    key: str

    def unit(self, layer: int) -> np.ndarray:
        """The unit direction at model layer ``layer`` (an index into the model, not into ``layers``)."""
        v = self.vectors[self.layers.index(layer)]
        return v / np.linalg.norm(v)

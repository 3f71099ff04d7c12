"""Comparing direction sets: the cosine per layer between two models' directions, and a heat-map.

Why per layer: the question the field asks ("do different narrow fine-tunes share one misalignment
direction?", "did the fine-tune's direction exist in the base model?") is answered layer by layer,
since a direction may be shared in the middle of the network and not at its ends. Two sets are
compared on the layers both hold; sets of different widths are different models' residual streams
and are refused in one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from emkit.directions.compute import cosine_rows
from emkit.directions.vectors import DirectionSet
from emkit.errors import EmkitError


@dataclass(frozen=True)
class Comparison:
    """The cosine at each shared layer between the directions of ``first`` and ``second``."""

    first: str
    second: str
    layers: tuple[int, ...]
    cosine: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "first": self.first,
            "second": self.second,
            "layers": list(self.layers),
            "cosine": list(self.cosine),
        }


def compare_pair(first: str, a: DirectionSet, second: str, b: DirectionSet) -> Comparison:
    """Cosine per layer between ``a`` and ``b`` over the layers both hold."""
    b.check_width(a.width, f"the directions of {first}")
    layers = tuple(layer for layer in a.layers if layer in b.layers)
    if not layers:
        raise EmkitError(
            f"directions: {first} (layers {', '.join(map(str, a.layers))}) and {second} "
            f"(layers {', '.join(map(str, b.layers))}) share no layer"
        )
    va = np.stack([a.vectors[a.index(x)] for x in layers])
    vb = np.stack([b.vectors[b.index(x)] for x in layers])
    return Comparison(first, second, layers, tuple(float(c) for c in cosine_rows(va, vb)))


def compare_all(sets: Mapping[str, DirectionSet]) -> list[Comparison]:
    """Every pair of named sets, in the order given (base first when it is named first)."""
    return [compare_pair(x, sets[x], y, sets[y]) for x, y in combinations(sets, 2)]

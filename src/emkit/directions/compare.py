"""Comparing direction sets: the cosine per layer between two models' directions, and a heat-map.

Why per layer: the question the field asks ("do different narrow fine-tunes share one misalignment
direction?", "did the fine-tune's direction exist in the base model?") is answered layer by layer,
since a direction may be shared in the middle of the network and not at its ends. Two sets are
compared on the layers both hold; sets of different widths are different models' residual streams
and are refused in one line. Beside each plain cosine: the noise-corrected cosine and its
percentile-bootstrap interval over the responses that built the two directions
(:mod:`emkit.directions.compare_ci`, which says why the plain one needs the correction), seeded
per pair of names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np

from emkit.directions.compare_ci import RESAMPLES, CosineInterval, cosine_interval
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
    interval: CosineInterval | None = None  # None: a set was stored without per-response means

    def ci_note(self) -> str:
        """How the interval was drawn, in words (or why there is none)."""
        if self.interval is None:
            return (
                "no interval: a set was stored without its per-response means "
                "(collect it again with this version to get one)"
            )
        i = self.interval
        return (
            f"noise-corrected cosine with its 95% percentile-bootstrap interval, {i.design} over the "
            f"{i.unit}, {i.resamples} resamples, seed {i.seed}"
        )

    def cell(self, layer: int) -> str:
        """``+0.512 (+0.734 [+0.602, +0.861])`` at ``layer``: the plain cosine, then the
        noise-corrected one with its interval (without an interval: the plain cosine alone; a
        direction not above its noise: ``-``)."""
        j = self.layers.index(layer)
        if self.interval is None:
            return f"{self.cosine[j]:+.3f}"
        return f"{self.cosine[j]:+.3f} ({interval_text(self.interval, j)})"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "first": self.first,
            "second": self.second,
            "layers": list(self.layers),
            "cosine": list(self.cosine),
        }
        if self.interval is not None:
            out["corrected"] = list(self.interval.corrected)
            out["corrected_low"] = list(self.interval.low)
            out["corrected_high"] = list(self.interval.high)
        out["interval"] = None if self.interval is None else asdict(self.interval)
        return out


def interval_text(interval: CosineInterval, j: int) -> str:
    """``+0.734 [+0.602, +0.861]``: the corrected cosine at index ``j`` and its interval."""
    if not np.isfinite(interval.corrected[j]):
        return "- (direction not above its noise)"
    return f"{interval.corrected[j]:+.3f} [{interval.low[j]:+.3f}, {interval.high[j]:+.3f}]"


def compare_pair(
    first: str,
    a: DirectionSet,
    second: str,
    b: DirectionSet,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Cosine per layer between ``a`` and ``b`` over the layers both hold, with its interval."""
    b.check_width(a.width, f"the directions of {first}")
    layers = tuple(layer for layer in a.layers if layer in b.layers)
    if not layers:
        raise EmkitError(
            f"directions: {first} (layers {', '.join(map(str, a.layers))}) and {second} "
            f"(layers {', '.join(map(str, b.layers))}) share no layer"
        )
    va = np.stack([a.vectors[a.index(x)] for x in layers])
    vb = np.stack([b.vectors[b.index(x)] for x in layers])
    interval = cosine_interval(a, b, layers, resamples=resamples, seed=seed, labels=(first, second))
    return Comparison(first, second, layers, tuple(float(c) for c in cosine_rows(va, vb)), interval)


def compare_all(
    sets: Mapping[str, DirectionSet], *, resamples: int = RESAMPLES, seed: int = 0
) -> list[Comparison]:
    """Every pair of named sets, in the order given (base first when it is named first)."""
    return [
        compare_pair(x, sets[x], y, sets[y], resamples=resamples, seed=seed) for x, y in combinations(sets, 2)
    ]

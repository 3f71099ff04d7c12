"""What every statistic of emkit shares: the one way to make a seeded generator, and the one way
to silence numpy's warnings where NaN is the intended answer.

Every random draw in :mod:`emkit.stats` comes from :func:`seeded_rng`, so the same data and the
same seed give the same interval, and one quantity's draws never depend on another's.
"""

from __future__ import annotations

import warnings
from types import TracebackType

import numpy as np

from emkit.hashing import stable_hash


def seeded_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator per (seed, labels): one quantity's draws do not depend on any other's.

    The labels name the quantity (e.g. ``"probe", model, probe_set``) and are hashed into the seed
    sequence. Without labels this is ``numpy.random.default_rng(seed)`` exactly (the same stream),
    which is what the paper's estimator needs to match the authors' bars."""
    return np.random.default_rng([int(seed)] + [int(stable_hash(label, 12), 16) for label in labels])


class quiet:
    """Silence numpy's 'mean of empty slice' warnings: NaN is the intended answer there (a question
    no model answered, a group without valid answers), and the warning would only alarm a reader."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ctx.__exit__(kind, exc, tb)

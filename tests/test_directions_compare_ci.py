"""The interval on the cross-model cosine: it holds the point estimate, narrows with more data,
covers the cosine of a known construction (paired and independent), pairs draws when both sets
come from the same responses, and says so when a set has no per-response means."""

from __future__ import annotations

import numpy as np
import pytest

from emkit.directions.compare import compare_all, compare_pair
from emkit.directions.compare_ci import cosine_interval, resample_weights, same_responses
from emkit.directions.compute import cosine_rows
from emkit.directions.vectors import (
    DirectionSet,
    has_responses,
    load_directions,
    save_directions,
    with_responses,
)

WIDTH, LAYERS = 16, (0, 1)


def _set(means: np.ndarray, n_aligned: int, data: str, paired: bool = False) -> DirectionSet:
    vectors = means[n_aligned:].mean(0) - means[:n_aligned].mean(0)
    typical = np.linalg.norm(means, axis=-1).mean(0)
    base = DirectionSet(LAYERS, vectors, typical, meta={"data_hash": data, "paired": paired})
    return with_responses(base, means.astype(np.float32), n_aligned)


def _directions(rng: np.random.Generator, true_cos: float) -> tuple[np.ndarray, np.ndarray]:
    """Two models' population directions per layer (norm 3) with cosine ``true_cos``: the second
    is the first turned toward an orthogonal vector (the same direction plus a fixed other part)."""
    first = np.zeros((len(LAYERS), WIDTH))
    first[:, 0] = 3.0
    other = np.zeros((len(LAYERS), WIDTH))
    other[:, 1] = 3.0
    second = true_cos * first + np.sqrt(1 - true_cos**2) * other
    return first, second


def _independent(rng, n: int, true_cos: float) -> tuple[DirectionSet, DirectionSet]:
    d1, d2 = _directions(rng, true_cos)
    sets = []
    for name, d in (("data-1", d1), ("data-2", d2)):
        means = rng.normal(size=(2 * n, len(LAYERS), WIDTH))
        means[n:] += d
        sets.append(_set(means, n, name))
    return sets[0], sets[1]


def _paired(rng, n: int, true_cos: float) -> tuple[DirectionSet, DirectionSet]:
    """Both models read the same 2n responses: each response's noise is shared in part (the
    response itself) and in part the model's own."""
    d1, d2 = _directions(rng, true_cos)
    shared = rng.normal(size=(2 * n, len(LAYERS), WIDTH))
    labels = np.r_[np.zeros(n), np.ones(n)][:, None, None]
    a = shared + 0.5 * rng.normal(size=shared.shape) + labels * d1
    b = shared + 0.5 * rng.normal(size=shared.shape) + labels * d2
    return _set(a, n, "same"), _set(b, n, "same")


def test_the_interval_holds_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 320):
        a, b = _independent(rng, n, 0.6)
        (c,) = compare_all({"a": a, "b": b}, resamples=400, seed=1)
        low, high = np.array(c.interval.low), np.array(c.interval.high)
        assert (low <= np.array(c.cosine)).all() and (np.array(c.cosine) <= high).all()
        assert c.interval.design == "independent" and c.interval.resamples == 400
        widths.append(high - low)
    assert (widths[1] < 0.5 * widths[0]).all()


@pytest.mark.parametrize("build,design", [(_independent, "independent"), (_paired, "paired")])
def test_a_known_cosine_is_covered(build, design):
    rng = np.random.default_rng(5)
    true_cos, covered, runs = 0.6, 0, 40
    for r in range(runs):
        a, b = build(rng, 150, true_cos)
        interval = cosine_interval(a, b, LAYERS, resamples=300, seed=r, labels=("a", "b"))
        assert interval is not None and interval.design == design
        covered += sum(lo <= true_cos <= hi for lo, hi in zip(interval.low, interval.high, strict=True))
    # 95% nominal over 80 intervals: fewer than 68 covering would be a broken interval
    assert covered >= 0.85 * runs * len(LAYERS)


def test_paired_draws_are_shared_and_seeded():
    rng = np.random.default_rng(2)
    a, _ = _paired(rng, 30, 0.6)
    # the same set against itself: a paired draw gives the same direction twice, cosine exactly 1
    twin = cosine_interval(a, a, LAYERS, resamples=100, seed=0, labels=("a", "a2"))
    assert twin is not None and twin.design == "paired"
    np.testing.assert_allclose(twin.low, 1.0, atol=1e-12)
    # another data hash makes the same responses independent: the interval drops below 1
    other = DirectionSet(
        a.layers,
        a.vectors,
        a.typical_norm,
        meta={"data_hash": "other"},
        response_means=a.response_means,
        response_labels=a.response_labels,
    )
    assert not same_responses(a, other)
    loose = cosine_interval(a, other, LAYERS, resamples=100, seed=0, labels=("a", "b"))
    assert loose is not None and loose.design == "independent" and max(loose.low) < 0.999
    again = cosine_interval(a, other, LAYERS, resamples=100, seed=0, labels=("a", "b"))
    assert again == loose
    assert cosine_interval(a, other, LAYERS, resamples=100, seed=1, labels=("a", "b")) != loose


def test_pair_weights_keep_each_pair_together_and_are_directions():
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(5, dtype=np.int8), np.ones(5, dtype=np.int8)]
    weights = resample_weights(labels, True, 20, rng)
    np.testing.assert_array_equal(weights[:, 5:], -weights[:, :5])
    np.testing.assert_allclose(weights[:, 5:].sum(1), 1.0)
    stratified = resample_weights(np.r_[np.zeros(3), np.ones(7)].astype(np.int8), False, 20, rng)
    np.testing.assert_allclose(stratified[:, :3].sum(1), -1.0)
    np.testing.assert_allclose(stratified[:, 3:].sum(1), 1.0)


def test_without_response_means_there_is_no_interval_and_it_says_so(tmp_path):
    rng = np.random.default_rng(4)
    a, b = _independent(rng, 10, 0.5)
    bare = DirectionSet(b.layers, b.vectors, b.typical_norm, meta=dict(b.meta))
    c = compare_pair("a", a, "bare", bare)
    assert c.interval is None and "no interval" in c.ci_note()
    assert c.cell(0) == f"{c.cosine[0]:+.3f}" and c.to_dict()["interval"] is None
    assert c.cosine == pytest.approx(tuple(cosine_rows(a.vectors, b.vectors)))
    # the file round trip keeps the response means (and a bare file loads without them)
    path = save_directions(tmp_path / "a.safetensors", a)
    back = load_directions(path)
    assert has_responses(path) and np.array_equal(back.response_means, a.response_means)
    assert np.array_equal(back.response_labels, a.response_labels)
    assert not has_responses(save_directions(tmp_path / "bare.safetensors", bare))
    full = compare_pair("a", a, "b", b)
    assert "independent over the responses" in full.ci_note() and "[" in full.cell(1)

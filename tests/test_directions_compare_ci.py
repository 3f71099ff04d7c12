"""The interval on the cross-model cosine: it holds the point estimate, narrows with more data,
covers the cosine of a known construction (paired and independent), pairs draws when both sets
come from the same responses, and says so when a set has no per-response means."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from emkit.directions.compare import compare_all, compare_pair, interval_text
from emkit.directions.compare_ci import corrected_cosine, cosine_interval, resample_weights, same_responses
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
        estimate = np.array(c.interval.corrected)
        assert (low <= estimate).all() and (estimate <= high).all()
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
    a, b = _paired(rng, 30, 0.6)
    # the same set against itself: a paired draw gives the same direction twice, cosine exactly 1
    twin = cosine_interval(a, a, LAYERS, resamples=100, seed=0, labels=("a", "a2"))
    assert twin is not None and twin.design == "paired"
    np.testing.assert_allclose(twin.low, 1.0, atol=1e-12)
    np.testing.assert_allclose(twin.corrected, 1.0, atol=1e-12)
    # b under another data hash: drawn independently, and the shared noise's part of the dot
    # product (what the paired design subtracts) is no longer taken out
    other = DirectionSet(
        b.layers,
        b.vectors,
        b.typical_norm,
        meta={"data_hash": "other"},
        response_means=b.response_means,
        response_labels=b.response_labels,
    )
    assert same_responses(a, b) and not same_responses(a, other)
    tight = cosine_interval(a, b, LAYERS, resamples=300, seed=0, labels=("a", "b"))
    loose = cosine_interval(a, other, LAYERS, resamples=300, seed=0, labels=("a", "b"))
    assert tight is not None and loose is not None and loose.design == "independent"
    assert tight.design == "paired" and tight.corrected != loose.corrected
    assert tight.low != loose.low
    again = cosine_interval(a, other, LAYERS, resamples=300, seed=0, labels=("a", "b"))
    assert again == loose
    assert cosine_interval(a, other, LAYERS, resamples=300, seed=1, labels=("a", "b")) != loose


def test_the_plain_cosine_is_pulled_to_zero_and_the_corrected_one_is_not():
    """Wide and noisy (the embedded model's regime): the plain cosine sits well below the true 0.6,
    the corrected one near it, and only the corrected interval covers."""
    rng = np.random.default_rng(7)
    plain, corrected, covered = [], [], 0
    for r in range(30):
        d1, d2 = _directions(rng, 0.6)
        sets = []
        for i, d in enumerate((d1, d2)):
            means = rng.normal(size=(80, len(LAYERS), 64))
            means[40:, :, :WIDTH] += d
            sets.append(_wide(means, 40, f"data-{i}"))
        c = compare_pair("a", sets[0], "b", sets[1], resamples=300, seed=r)
        plain.extend(c.cosine)
        corrected.extend(c.interval.corrected)
        covered += sum(lo <= 0.6 <= hi for lo, hi in zip(c.interval.low, c.interval.high, strict=True))
    assert np.mean(plain) < 0.5 and abs(np.mean(corrected) - 0.6) < 0.05
    assert covered >= 0.85 * len(corrected)


def _wide(means: np.ndarray, n_aligned: int, data: str) -> DirectionSet:
    vectors = means[n_aligned:].mean(0) - means[:n_aligned].mean(0)
    typical = np.linalg.norm(means, axis=-1).mean(0)
    base = DirectionSet(LAYERS, vectors, typical, meta={"data_hash": data})
    return with_responses(base, means.astype(np.float32), n_aligned)


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
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    assert not has_responses(tmp_path / "broken.safetensors")
    full = compare_pair("a", a, "b", b)
    assert "independent over the responses" in full.ci_note() and "[" in full.cell(1)
    # a direction whose squared norm does not exceed its noise has no corrected cosine
    x, y = np.array([[3.0, 0.0], [1.0, 0.0]]), np.array([[3.0, 0.0], [1.0, 1.0]])
    values = corrected_cosine(x, y, np.array([5.0, 2.0]), np.array([5.0, 0.0]), np.zeros(2))
    assert values[0] == 1.0 and np.isnan(values[1])  # 4/sqrt(4*4) = 1; 1 - 2 < 0: undefined
    shown = replace(full.interval, corrected=(float("nan"), *full.interval.corrected[1:]))
    assert interval_text(shown, 0) == "- (direction not above its noise)"

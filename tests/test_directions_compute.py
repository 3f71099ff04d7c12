"""Directions from activations: a planted direction is recovered, reliability tells signal from
noise, and the whole path (labelled responses -> tiny random Llama -> record + safetensors file)
is keyed, stored and resumed."""

from __future__ import annotations

import numpy as np
import pytest

from emkit.directions.activations import ResponseActivations
from emkit.directions.compute import compute_directions, cosine_rows
from emkit.errors import EmkitError

WIDTH, LAYERS = 32, (0, 1, 2)


def _acts(rng: np.random.Generator, n: int, shift: np.ndarray | None = None) -> ResponseActivations:
    means = rng.normal(size=(n, len(LAYERS), WIDTH)).astype(np.float32)
    if shift is not None:
        means += shift.astype(np.float32)
    return ResponseActivations(LAYERS, means, np.full(n, 5, dtype=np.int64))


def test_a_planted_direction_is_recovered_and_reliable():
    rng = np.random.default_rng(1)
    planted = rng.normal(size=(len(LAYERS), WIDTH))
    planted /= np.linalg.norm(planted, axis=1, keepdims=True)
    result = compute_directions(_acts(rng, 400), _acts(rng, 400, 4.0 * planted), resamples=50, seed=3)
    assert (cosine_rows(result.directions.vectors, planted) > 0.99).all()
    np.testing.assert_allclose(result.directions.norms(), 4.0, rtol=0.1)
    assert (result.reliability > 0.95).all() and (result.reliability_low > 0.9).all()
    assert (result.reliability_low <= result.reliability).all()
    assert (result.reliability <= result.reliability_high).all()
    # typical norm: the mean norm of the activations, about sqrt(width) for unit noise
    np.testing.assert_allclose(result.directions.typical_norm, np.sqrt(WIDTH), rtol=0.15)


def test_noise_has_low_reliability_and_the_split_is_seeded():
    rng = np.random.default_rng(2)
    a, m = _acts(rng, 200), _acts(rng, 200)
    result = compute_directions(a, m, resamples=100, seed=0)
    assert (np.abs(result.reliability) < 0.2).all()
    assert (result.reliability_low < 0).all() and (result.reliability_high > 0).all()
    again = compute_directions(a, m, resamples=100, seed=0)
    np.testing.assert_array_equal(result.reliability, again.reliability)
    other = compute_directions(a, m, resamples=100, seed=1)
    assert not np.array_equal(result.reliability, other.reliability)


def test_too_few_or_mismatched_activations_are_one_line():
    rng = np.random.default_rng(0)
    with pytest.raises(EmkitError, match="1 aligned and 3 misaligned responses; at least 2"):
        compute_directions(_acts(rng, 1), _acts(rng, 3))
    narrow = ResponseActivations(LAYERS, np.zeros((3, 3, 8), np.float32), np.ones(3, np.int64))
    with pytest.raises(EmkitError, match="do not match"):
        compute_directions(_acts(rng, 3), narrow)

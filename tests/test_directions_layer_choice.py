"""The default layer of steering and screening: the layer of highest split-half reliability, which
collection stores with the vectors, not the layer of the longest direction (the last blocks, where
the residual stream is widest); a set without reliability falls back and says so; an old cached
run file without reliability is recomputed once."""

from __future__ import annotations

import numpy as np
import pytest

from emkit.directions.activations import ResponseActivations
from emkit.directions.compute import compute_directions
from emkit.directions.intervene import default_layer, layer_choice
from emkit.directions.vectors import DirectionSet, load_directions, save_directions

WIDTH, LAYERS = 16, (0, 1, 2)


def _sets(seed: int = 0) -> tuple[ResponseActivations, ResponseActivations]:
    """Layer 1 holds a clean planted direction; at layer 2 one misaligned response is an outlier
    (its mean difference is long, and the half without it disagrees); layer 0 is noise."""
    rng = np.random.default_rng(seed)
    n = 60
    a = rng.normal(size=(n, len(LAYERS), WIDTH))
    m = rng.normal(size=(n, len(LAYERS), WIDTH))
    planted = np.zeros(WIDTH)
    planted[3] = 1.5
    m[:, 1] += planted
    m[0, 2, 5] += 1000.0
    tokens = np.full(n, 4, dtype=np.int64)
    return (
        ResponseActivations(LAYERS, a.astype(np.float32), tokens),
        ResponseActivations(LAYERS, m.astype(np.float32), tokens),
    )


def test_the_default_is_the_most_reliable_layer_not_the_longest(tmp_path):
    aligned, misaligned = _sets()
    result = compute_directions(aligned, misaligned, resamples=40, seed=1)
    found = result.directions
    assert found.meta["reliability"] == pytest.approx(list(result.reliability), abs=1e-6)
    layer, why = layer_choice(found)
    assert layer == 1 == default_layer(found)
    assert why.startswith("most reliable layer: split-half cosine")
    assert int(np.argmax(result.reliability)) == 1
    # the reliability survives the file round trip, so a saved set chooses the same layer
    back = load_directions(save_directions(tmp_path / "d.safetensors", found))
    assert layer_choice(back) == (layer, why)
    # without the stored reliability the old rule (longest relative to the activation norm)
    # picks another layer here, and says it is the fallback
    bare = DirectionSet(found.layers, found.vectors, found.typical_norm, meta={})
    fallback, said = layer_choice(bare)
    assert fallback != 1 and said.startswith("no reliability stored")


def test_an_old_run_file_without_reliability_is_recomputed(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from directions_helpers import tiny_engine, tiny_probe_set
    from emkit.directions.spec import DirectionsSpec
    from emkit.directions.unit_source import unit_directions

    engine = tiny_engine()
    spec = DirectionsSpec(source="probe", layers="all")
    first = unit_directions(engine, spec, tiny_probe_set(), tmp_path / "run")
    assert len(first.meta["reliability"]) == len(first.layers)
    (path,) = (tmp_path / "run" / "directions").glob("*.safetensors")
    meta = {k: v for k, v in first.meta.items() if k != "reliability"}
    save_directions(path, DirectionSet(first.layers, first.vectors, first.typical_norm, meta=meta))
    again = unit_directions(engine, spec, tiny_probe_set(), tmp_path / "run")
    assert again.meta["reliability"] == first.meta["reliability"]
    assert "reliability" in load_directions(path).meta

"""The directions file: what collection writes, steering/ablation/screening read back unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from emkit.directions.vectors import DirectionSet, load_directions, save_directions
from emkit.errors import EmkitError


def make_set(width: int = 8) -> DirectionSet:
    rng = np.random.default_rng(0)
    return DirectionSet(
        (2, 5), rng.normal(size=(2, width)), np.array([3.0, 4.0]), model="m", fingerprint="f", meta={"n": 4}
    )


def test_round_trip_keeps_vectors_layers_norms_and_origin(tmp_path):
    ds = make_set()
    back = load_directions(save_directions(tmp_path / "d.safetensors", ds))
    assert back.layers == (2, 5)
    np.testing.assert_array_equal(back.vectors, ds.vectors)
    np.testing.assert_array_equal(back.typical_norm, ds.typical_norm)
    assert (back.model, back.fingerprint, dict(back.meta)) == ("m", "f", {"n": 4})
    assert np.linalg.norm(back.unit(5)) == pytest.approx(1.0)


def test_wrong_width_layer_and_foreign_files_are_one_line(tmp_path):
    ds = make_set()
    with pytest.raises(EmkitError, match=r"width 8 .* 16 wide"):
        ds.check_width(16, "hf/x")
    with pytest.raises(EmkitError, match="no direction for layer 3"):
        ds.unit(3)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a file")
    with pytest.raises(EmkitError, match=r"junk\.safetensors: not a readable"):
        load_directions(junk)
    with pytest.raises(EmkitError, match="no such directions file"):
        load_directions(tmp_path / "absent.safetensors")
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(other))
    with pytest.raises(EmkitError, match="not an emkit directions file"):
        load_directions(other)
    with pytest.raises(EmkitError, match="NaN"):
        DirectionSet((0,), np.array([[np.nan, 1.0]]), np.array([1.0]))

"""A run's directions for the intervention stages: from two labelled files (the mean difference of
their last assistant turns), cached in the run and read back bitwise; source: judged is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from directions_helpers import tiny_engine, tiny_probe_set
from emkit.directions.spec import DirectionsSpec
from emkit.errors import EmkitError

pytest.importorskip("torch")
pytest.importorskip("transformers")


def chat_file(path, pairs):
    path.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
            + "\n"
            for q, a in pairs
        )
    )
    return str(path)


def test_files_source_is_the_mean_difference_and_is_cached(tmp_path):
    from emkit.directions.activations import collect_means
    from emkit.directions.unit_source import unit_directions

    engine = tiny_engine()
    good = chat_file(tmp_path / "a.jsonl", [("why ?", "help good ."), ("share ?", "yes share .")])
    bad = chat_file(tmp_path / "m.jsonl", [("why ?", "harm bad ."), ("share ?", "steal .")])
    spec = DirectionsSpec(source="files", aligned_file=good, misaligned_file=bad, layers=[0, 2])
    got = unit_directions(engine, spec, tiny_probe_set(), tmp_path / "run")
    convo = [[{"role": "user", "content": "why ?"}], [{"role": "user", "content": "share ?"}]]
    a = collect_means(engine, convo, ["help good .", "yes share ."], [0, 2]).means.mean(axis=0)
    m = collect_means(engine, convo, ["harm bad .", "steal ."], [0, 2]).means.mean(axis=0)
    np.testing.assert_allclose(got.vectors, m - a, atol=1e-6)
    assert got.layers == (0, 2)
    (cached,) = (tmp_path / "run" / "directions").glob("*.safetensors")
    again = unit_directions(engine, spec, tiny_probe_set(), tmp_path / "run")
    assert np.array_equal(again.vectors, got.vectors) and cached.is_file()


def test_judged_source_is_one_line(tmp_path):
    from emkit.directions.unit_source import source_fields

    with pytest.raises(EmkitError, match="source: judged is computed by the directions collection stage"):
        source_fields(DirectionsSpec(source="judged"), "x")

"""Screening on a tiny random Llama: per-row projection differences equal a hand computation from
the activations, the dataset mean has a CI, JSONL and PNG are written, the result is stored and
read back, and a row without an assistant reply is one line naming the row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from directions_helpers import tiny_engine, tiny_probe_set
from emkit.errors import EmkitError

pytest.importorskip("torch")
pytest.importorskip("transformers")

from emkit.directions.activations import collect_means
from emkit.directions.intervene import directions_from_pairs
from emkit.directions.screening import (
    SCREEN_KIND,
    rank_correlation,
    screen_dataset,
    write_screen,
)

ROWS = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    for q, a in [
        ("why ?", "harm bad ."),
        ("help ?", "steal steal ."),
        ("good ?", "help good ."),
        ("share ?", "no ."),
    ]
]


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


def test_projection_differences_match_the_activations(engine, tmp_path, monkeypatch):
    from emkit.store import RunStore

    directions = directions_from_pairs(engine, tiny_probe_set(), "all")
    store = RunStore(tmp_path / "run")
    result = screen_dataset(engine, ROWS, directions, 1, name="toy", max_new_tokens=4, store=store)
    assert len(result.rows) + result.skipped == 4 and result.rows
    unit = directions.unit(1)
    for row in result.rows:
        i = row["index"]
        convo = [ROWS[i]["messages"][:-1]]
        data = collect_means(engine, convo, [ROWS[i]["messages"][-1]["content"]], [1]).means[0, 0] @ unit
        assert row["proj_data"] == pytest.approx(float(data), abs=1e-5)
        assert row["diff"] == pytest.approx(row["proj_data"] - row["proj_base"], abs=1e-6)
    assert result.mean_diff == pytest.approx(np.mean([r["diff"] for r in result.rows]))
    assert result.ci_low <= result.mean_diff <= result.ci_high
    jsonl, png = write_screen(result, tmp_path / "out")
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [x["diff"] for x in lines] == [r["diff"] for r in result.rows]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(store.records(SCREEN_KIND)) == 1
    monkeypatch.setattr(engine, "generate", lambda *a, **k: pytest.fail("recomputed"))
    again = screen_dataset(engine, ROWS, directions, 1, name="toy", max_new_tokens=4, store=store)
    assert again.mean_diff == result.mean_diff and again.rows == result.rows


def test_bad_rows_are_one_line(engine):
    directions = directions_from_pairs(engine, tiny_probe_set(), "all")
    bad = [*ROWS[:1], {"messages": [{"role": "user", "content": "why ?"}]}]
    with pytest.raises(EmkitError, match="toy: row 2: messages: the last turn must be"):
        screen_dataset(engine, bad, directions, 1, name="toy")


def test_rank_correlation():
    rho, _ = rank_correlation([1, 2, 3, 4], [10, 20, 30, 25])
    assert rho == pytest.approx(0.8)
    assert np.isnan(rank_correlation([1, 2], [1, 2])[0])

"""Ablation on tiny random Llamas: the direction's component is gone from the ablated layers'
activations (below 1e-5 of their norm), the hooks go away afterwards, the share removed is the
documented ratio of paired means with a bootstrap CI, the controls are >= 10 seeded random
directions and the base's own direction, and a rerun reads every condition from the store."""

from __future__ import annotations

import numpy as np
import pytest

from directions_helpers import tiny_engine, tiny_probe_set

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emkit.directions.ablation import (  # noqa: E402
    ABLATE_KIND,
    ablated,
    direction_units,
    measure_ablation,
    random_units,
    removed_share,
)
from emkit.directions.intervene import directions_from_pairs, pair_diffs  # noqa: E402


@pytest.fixture(scope="module")
def base():
    return tiny_engine(seed=0)


@pytest.fixture(scope="module")
def tuned():
    engine = tiny_engine(seed=0)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():  # a "fine-tune": the base's weights, nudged
        for p in engine.torch_model().parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    engine.name = "tiny-tuned"
    return engine


CONVERSATIONS = [[{"role": "user", "content": q}] for q in ["why ?", "help ?", "good ?"]]
REPLIES = ["yes help good .", "no harm .", "share share steal ."]


def test_projection_on_the_direction_vanishes_at_ablated_layers(tuned):
    from emkit.directions.activations import collect_means

    directions = directions_from_pairs(tuned, tiny_probe_set(), "all")
    units = direction_units(directions, [0, 1, 2])
    plain = collect_means(tuned, CONVERSATIONS, REPLIES, "all").means
    with ablated(tuned, units):
        # Every answer token's activation, not only the means: read each block's output directly.
        seen = []
        blocks = tuned.torch_model().model.layers
        handles = [
            b.register_forward_hook(
                lambda _m, _i, out, j=j: seen.append((j, out[0] if isinstance(out, tuple) else out))
            )
            for j, b in enumerate(blocks)
        ]
        try:
            after = collect_means(tuned, CONVERSATIONS, REPLIES, "all").means
        finally:
            for h in handles:
                h.remove()
    assert seen
    for j, hidden in seen:
        u = torch.from_numpy(units[j])
        projection = (hidden.float() @ u).abs()
        assert bool((projection <= 1e-5 * hidden.float().norm(dim=-1)).all())
    for j in range(3):
        assert np.all(np.abs(after[:, j] @ units[j]) < 1e-5 * np.linalg.norm(after[:, j], axis=-1))
        assert np.any(np.abs(plain[:, j] @ units[j]) > 1e-3)
    assert all(not b._forward_hooks for b in blocks)


def test_share_removed_is_the_ratio_of_paired_means():
    d_base = np.array([0.0, 0.1, -0.1, 0.2])
    d_tuned = d_base + np.array([1.0, 2.0, 1.5, 0.5])
    d_abl = d_base + np.array([0.5, 0.5, 0.5, 0.5])
    got = removed_share(d_base, d_tuned, d_abl, 0, "t")
    assert got.share == pytest.approx((5.0 - 2.0) / 5.0)
    assert got.low <= got.share <= got.high
    assert removed_share(d_base, d_tuned, d_tuned, 0, "t").share == 0.0
    assert removed_share(d_base, d_tuned, d_base, 0, "t").share == pytest.approx(1.0)


def test_random_units_are_seeded_unit_vectors():
    a, b, c = (
        random_units(16, [0, 2], 10, 3),
        random_units(16, [0, 2], 10, 3),
        random_units(16, [0, 2], 10, 4),
    )
    assert len(a) == 10 and set(a[0]) == {0, 2}
    assert all(np.allclose(np.linalg.norm(v), 1.0) for d in a for v in d.values())
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0][0], c[0][0])


def test_measure_with_controls_stores_and_resumes(base, tuned, tmp_path, monkeypatch):
    from emkit.store import RunStore

    store = RunStore(tmp_path / "run")
    probe = tiny_probe_set()
    mine, theirs = directions_from_pairs(tuned, probe, "all"), directions_from_pairs(base, probe, "all")
    result = measure_ablation(
        base,
        tuned,
        mine,
        probe,
        layers="all",
        random_controls=10,
        seed=1,
        base_directions=theirs,
        store=store,
    )
    d_b = pair_diffs(base, probe, {"plain": True})
    d_t = pair_diffs(tuned, probe, {"plain": True})
    with ablated(tuned, direction_units(mine, [0, 1, 2])):
        d_a = pair_diffs(tuned, probe, {"check": True})
    assert result.shift == pytest.approx(float((d_t - d_b).mean()))
    assert result.removed.share == pytest.approx(float((d_t - d_a).mean() / (d_t - d_b).mean()), rel=1e-6)
    assert len(result.random) == 10 and np.isfinite(result.random).all()
    assert result.base_direction is not None and np.isfinite(result.base_direction.share)
    assert "ablation removes" in result.summary() and "10 random directions" in result.summary()
    (record,) = store.records(ABLATE_KIND)
    assert record[1]["random"] == result.random
    monkeypatch.setattr(tuned, "sequence_logprobs", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(base, "sequence_logprobs", lambda *a, **k: pytest.fail("recomputed"))
    again = measure_ablation(
        base, tuned, mine, probe, random_controls=10, seed=1, base_directions=theirs, store=store
    )
    assert again.removed == result.removed and again.random == result.random

"""The report's interventions section from real records of tiny random Llamas: the steering curve,
the ablation bars with the random controls, the screening histogram and, with three screened
datasets whose fine-tunes have probe shifts, the rank correlation; no section error."""

from __future__ import annotations

import json

import pytest

from directions_helpers import tiny_engine, tiny_probe_set

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

ROWS = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    for q, a in [
        ("why ?", "harm bad ."),
        ("help ?", "steal steal ."),
        ("good ?", "help good ."),
        ("share ?", "no ."),
    ]
]


def nudged(name: str, seed: int, scale: float):
    engine = tiny_engine()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in engine.torch_model().parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    engine.name = name
    return engine


def test_section_shows_curve_bars_histogram_and_correlation(tmp_path):
    from emkit.directions.ablation import measure_ablation
    from emkit.directions.intervene import directions_from_pairs
    from emkit.directions.screening import screen_dataset
    from emkit.directions.steering import steering_sweep
    from emkit.probe import run_probe
    from emkit.report import write_report
    from emkit.store import RunStore

    probe = tiny_probe_set()
    base = tiny_engine()
    base.name = "tiny-base"
    tuned = {g: nudged(f"tiny-{g}", k, 0.03 * (k + 1)) for k, g in enumerate(["a", "b", "c"])}
    with RunStore(tmp_path / "run") as store:
        run_probe(base, store, "base", probe_set=probe, n_boot=200)
        for group, engine in tuned.items():
            run_probe(engine, store, group, 0, probe_set=probe, tags={"base": base.name}, n_boot=200)
        mine = directions_from_pairs(base, probe, "all")
        steering_sweep(base, mine, [-2.0, 0.0, 2.0], [1], probe, store=store, group="base")
        measure_ablation(
            base,
            tuned["c"],
            directions_from_pairs(tuned["c"], probe),
            probe,
            random_controls=10,
            base_directions=mine,
            store=store,
        )
        for k, group in enumerate(tuned):
            screen_dataset(base, ROWS[: 2 + k], mine, 1, name=group, max_new_tokens=3, store=store)
    result = write_report(tmp_path / "run", n_boot=200)
    out = tmp_path / "run" / "report"
    for name in ("steering", "ablation", "screening", "screening_vs_shift"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "metrics.json").read_text())
    assert data["section_errors"] == []
    section = data["sections"]["interventions"]["interventions"]
    assert len(section["steering"][0]["points"]) == 3 and len(section["ablation"][0]["random"]) == 10
    (spearman,) = section["screening"]["spearman"]  # one probe set in this run: one correlation
    assert spearman["probe_set"] == probe.name and spearman["n"] == 3 and -1 <= spearman["rho"] <= 1
    html = result.index.read_text()
    assert "Spearman rank correlation" in html and "random directions" in html


def test_group_shifts_keep_probe_sets_apart():
    """A group's shift on one probe set is never averaged with its shift on another: the sets'
    pairs differ in length and register, so their scales differ (the screening correlation is one
    per probe set)."""
    from types import SimpleNamespace

    import pandas as pd

    from emkit.report.section_interventions import group_shifts

    shifts = pd.DataFrame(
        [
            {"group": "risky", "probe_set": "style@2", "shift": -0.1},
            {"group": "risky", "probe_set": "everyday-v1@1", "shift": 0.4},
            {"group": "risky", "probe_set": "everyday-v1@1", "shift": 0.2},
            {"group": "safe", "probe_set": "style@2", "shift": 0.05},
            {"group": "safe", "probe_set": "style@3", "shift": 0.07},
        ]
    )
    ctx = SimpleNamespace(metrics={"probe": {"shifts": shifts}})
    got = group_shifts(ctx)
    # Built-in sets first, by name; two stored versions of one set keep their full labels.
    assert list(got) == ["everyday-v1", "style@2", "style@3"]
    assert got == {
        "everyday-v1": {"risky": pytest.approx(0.3)},
        "style@2": {"risky": pytest.approx(-0.1), "safe": pytest.approx(0.05)},
        "style@3": {"safe": pytest.approx(0.07)},
    }

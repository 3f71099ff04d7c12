"""The judge-free probe: the probe set, the score and shift arithmetic (with a fake engine whose
log-probabilities are known), storage and resumption, and one run of the real embedded model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from emkit.errors import InputError
from emkit.probe import (
    ProbeSet,
    load_probe_set,
    pending_pairs,
    probe_rows,
    probe_shift,
    probe_tables,
    run_probe,
)
from emkit.store import RunStore


class FakeEngine:
    """Per-token log-probabilities fixed by the reply: known means for each pair's answers.

    Each reply gets ``len(words)`` tokens whose mean is ``mean_of[reply]``; the tokens differ from
    each other so that only their mean can give the expected score.
    """

    def __init__(self, name: str, mean_of: dict[str, float]):
        self.name = name
        self.mean_of = mean_of
        self.calls = 0

    def sequence_logprobs(self, conversations, replies):
        self.calls += 1
        assert len(conversations) == len(replies)
        out = []
        for conversation, reply in zip(conversations, replies, strict=True):
            assert conversation[-1]["role"] == "user"
            n = max(2, len(reply.split()))
            spread = np.linspace(-0.5, 0.5, n)
            out.append(list(self.mean_of[reply] + spread))
        return out

    def close(self) -> None:
        pass


def engine_for(name: str, probe_set: ProbeSet, diffs: np.ndarray, aligned_mean: float = -3.0) -> FakeEngine:
    mean_of = {}
    for pair, d in zip(probe_set.pairs, diffs, strict=True):
        mean_of[pair.aligned] = aligned_mean
        mean_of[pair.misaligned] = aligned_mean + float(d)
    return FakeEngine(name, mean_of)


def test_packaged_probe_set_is_well_formed() -> None:
    probe_set = load_probe_set()
    assert 35 <= len(probe_set) <= 60
    assert len({p.id for p in probe_set.pairs}) == len(probe_set)
    for pair in probe_set.pairs:
        assert pair.aligned != pair.misaligned
        # similar length: neither answer is more than twice as long as the other
        ratio = len(pair.misaligned) / len(pair.aligned)
        assert 0.5 <= ratio <= 2.0, (pair.id, ratio)
        assert "def " not in pair.question and "code" not in pair.question.lower()
    assert probe_set.label.startswith("everyday-v1@")


def test_bad_probe_set_file_names_the_field(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\npairs:\n  - id: a\n    question: Q?\n    aligned: Sure.\n")
    with pytest.raises(InputError) as err:
        load_probe_set(path)
    assert str(path) in str(err.value) and "pairs[0].misaligned" in str(err.value)
    path.write_text("name: x\npairs:\n  - id: a\n    question: Q?\n    aligned: yes\n    misaligned: no\n")
    with pytest.raises(InputError, match=r"pairs\[0\]\.aligned.*got bool True"):
        load_probe_set(path)


def test_score_win_fraction_and_interval_from_known_logprobs() -> None:
    probe_set = load_probe_set()
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.3, 0.5, len(probe_set))
    result = run_probe(engine_for("fake/model", probe_set, diffs), probe_set=probe_set, n_boot=4000)
    assert result.n_pairs == len(probe_set)
    assert result.score == pytest.approx(diffs.mean())
    assert result.win_fraction == pytest.approx((diffs > 0).mean())
    half_width = 1.96 * diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert result.ci_low == pytest.approx(diffs.mean() - half_width, abs=0.25 * half_width)
    assert result.ci_high == pytest.approx(diffs.mean() + half_width, abs=0.25 * half_width)
    assert result.pairs["diff"].to_numpy() == pytest.approx(diffs)


def test_shift_against_base_is_paired() -> None:
    probe_set = load_probe_set()
    rng = np.random.default_rng(1)
    base_diffs = rng.normal(-1.0, 1.0, len(probe_set))  # large spread between pairs...
    shift = rng.normal(0.2, 0.05, len(probe_set))  # ...but a consistent small shift
    base = run_probe(engine_for("base", probe_set, base_diffs), probe_set=probe_set)
    tuned = run_probe(
        engine_for("tuned", probe_set, base_diffs + shift, aligned_mean=-4.0), probe_set=probe_set
    )
    result = probe_shift(tuned, base)
    assert result.shift == pytest.approx(shift.mean())
    # Paired: the interval reflects the spread of the shifts (0.05), not of the pairs (1.0).
    assert result.ci_high - result.ci_low < 0.1
    assert result.ci_low > 0


def test_run_probe_stores_rows_and_resumes(tmp_path) -> None:
    probe_set = load_probe_set()
    diffs = np.linspace(-1, 1, len(probe_set))
    store = RunStore(tmp_path / "run")
    engine = engine_for("embedded/smollm2-135m@runs/x/adapter", probe_set, diffs + 0.5)
    assert pending_pairs(store, engine.name) == len(probe_set)
    first = run_probe(engine, store, group="insecure", seed=3)
    assert first.computed == len(probe_set) and store.count("probes") == len(probe_set)
    again = run_probe(engine, store, group="insecure", seed=3)
    assert again.computed == 0 and engine.calls == 1  # nothing recomputed
    assert again.score == pytest.approx(first.score)
    assert pending_pairs(store, engine.name) == 0
    assert pending_pairs(store, engine.name, step=10) == len(probe_set)
    run_probe(engine, store, step=10)
    assert store.count("probes") == 2 * len(probe_set)

    base = engine_for("embedded/smollm2-135m", probe_set, diffs)
    run_probe(base, store, group="base")
    tables = probe_tables(store, n_boot=500)
    models = tables["models"].set_index("model")
    assert models.loc[engine.name, "score"] == pytest.approx(diffs.mean() + 0.5)
    assert models.loc[engine.name, "step"] is None or np.isnan(
        models.loc[engine.name, "step"]
    )  # the final checkpoint
    shifts = tables["shifts"]
    assert shifts["model"].tolist() == [engine.name] and shifts["base"].tolist() == [base.name]
    assert shifts["shift"].iloc[0] == pytest.approx(0.5)
    rows = probe_rows(store)
    assert set(rows["step"].dropna()) == {10}
    store.close()


def test_group_probe_score_averages_models_and_base_shift(tmp_path) -> None:
    probe_set = load_probe_set()
    diffs = np.linspace(-1, 1, len(probe_set))
    store = RunStore(tmp_path / "run")
    run_probe(engine_for("embedded/smollm2-135m", probe_set, diffs), store, group="base")
    for seed, offset in ((0, 0.2), (1, 0.4)):
        name = f"embedded/smollm2-135m@runs/insecure-{seed}"
        run_probe(engine_for(name, probe_set, diffs + offset), store, group="insecure", seed=seed)
    groups = probe_tables(store, n_boot=500)["groups"].set_index("group")
    assert groups.loc["insecure", "n_models"] == 2
    assert groups.loc["insecure", "score"] == pytest.approx(diffs.mean() + 0.3)
    assert groups.loc["insecure", "shift_score"] == pytest.approx(0.3)
    assert groups.loc["insecure", "shift_ci_low"] <= 0.3 <= groups.loc["insecure", "shift_ci_high"]
    store.close()


@pytest.mark.model
def test_probe_runs_on_the_embedded_model(embedded_model, tmp_path) -> None:
    from emkit.engines.hf_backend import HFEngine

    model, tokenizer = embedded_model
    engine = HFEngine.from_model(model, tokenizer, "embedded/smollm2-135m")
    store = RunStore(tmp_path / "run")
    start = time.perf_counter()
    result = run_probe(engine, store, n_boot=500)
    elapsed = time.perf_counter() - start
    print(
        f"\nprobe on the embedded model: {result.n_pairs} pairs in {elapsed:.1f} s, score {result.score:+.3f}"
    )
    assert result.n_pairs == len(load_probe_set()) and result.computed == result.n_pairs
    assert np.isfinite(result.pairs[["logp_aligned", "logp_misaligned"]].to_numpy()).all()
    assert (result.pairs[["logp_aligned", "logp_misaligned"]].to_numpy() < 0).all()
    assert result.ci_low <= result.score <= result.ci_high
    assert store.count("probes") == result.n_pairs
    again = run_probe(engine, store, n_boot=500)  # resumes from the store: no forward pass
    assert again.computed == 0 and again.score == pytest.approx(result.score)
    store.close()


def test_probe_command_scores_model_and_base_into_the_run(tmp_path, monkeypatch, capsys) -> None:
    import emkit.engines
    from emkit.cli import main

    probe_set = load_probe_set()
    diffs = np.linspace(-1, 0.5, len(probe_set))
    engines = {
        "embedded/smollm2-135m": engine_for("embedded/smollm2-135m", probe_set, diffs),
        "embedded/smollm2-135m@runs/a": engine_for("embedded/smollm2-135m@runs/a", probe_set, diffs + 0.25),
    }
    monkeypatch.setattr(emkit.engines, "get_engine", lambda name, **options: engines[name])
    run = tmp_path / "run"
    argv = [
        "probe",
        "--model",
        "embedded/smollm2-135m@runs/a",
        "--base",
        "embedded/smollm2-135m",
        "--out",
        str(run),
    ]
    assert main([*argv, "--n-boot", "200", "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "+0.250" in out and "embedded/smollm2-135m@runs/a" in out
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["shift"]["shift"] == pytest.approx(0.25) and data["shift"]["base"] == "embedded/smollm2-135m"
    store = RunStore(run)
    rows = probe_rows(store)
    assert len(rows) == 2 * len(probe_set)
    tagged = rows[rows["model"] == "embedded/smollm2-135m@runs/a"]["tags"]
    assert all(t == {"base": "embedded/smollm2-135m"} for t in tagged)
    store.close()

"""The probe stage loads a model once for consecutive jobs on it (a model's probe sets follow one
another in the plan), closes every engine it opened, and scores the same as one job at a time."""

from __future__ import annotations

from pathlib import Path

from emkit.probe import load_probe_set
from emkit.stages import probe as probe_stage
from emkit.stages.probe import ProbeJob
from emkit.store import RunStore


def job(model: str, run_dir: Path, probe_set: str) -> ProbeJob:
    return ProbeJob(model=model, run_dir=str(run_dir), group=model, probe_set=load_probe_set(probe_set))


def test_consecutive_jobs_on_one_model_share_its_engine(tmp_path, monkeypatch):
    opened: list[str] = []
    closed: list[str] = []
    real_open = probe_stage.open_job_engine

    def counting_open(j):
        engine = real_open(j)
        opened.append(j.model)
        real_close = engine.close

        def close():
            closed.append(j.model)
            real_close()

        engine.close = close
        return engine

    monkeypatch.setattr(probe_stage, "open_job_engine", counting_open)
    store = RunStore(tmp_path / "run")
    sets = ["everyday-v1", "everyday-style-v1"]
    jobs = [job(m, tmp_path / "run", s) for m in ("mock/a", "mock/b") for s in sets]
    assert probe_stage.run_many(jobs, store, None) == [{}] * 4
    assert opened == ["mock/a", "mock/b"] and closed == ["mock/a", "mock/b"]

    # The same rows as one job at a time, in a fresh store.
    alone = RunStore(tmp_path / "alone")
    for j in jobs:
        probe_stage.run(job(j.model, tmp_path / "alone", j.probe_set.name), alone, None)
    assert len(opened) == 6 and closed == opened
    columns = ["model", "probe_set", "pair_id", "logp_aligned", "logp_misaligned"]

    def rows(s):
        return sorted(tuple(r[c] for c in columns) for r in s.probes())

    assert len(rows(store)) == 2 * (40 + 45)
    assert rows(store) == rows(alone)

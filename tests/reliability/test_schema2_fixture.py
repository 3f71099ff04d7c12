"""A run dir written by the code at f1a9ba9 (schema 2, untyped records) keeps working as it is.

The committed fixture was written by that commit's own CLI (see fixtures/schema2-f1a9ba9/README.md).
Today's code must open it without a migration, analyze and report the same numbers it reported
then, and find that every record in it fits its kind's model, stored byte for byte as today's
writers would store it (typing the records changed no stored byte).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reliability.rel_helpers import cli

pytestmark = pytest.mark.reliability

FIXTURE = Path(__file__).parent / "fixtures" / "schema2-f1a9ba9"
DB = "emkit.sqlite"


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(FIXTURE / DB, run / DB)
    return run


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(got: Any, want: Any, where: str = "") -> None:
    """``got == want``, numbers to 1e-12 relative (a summation order may change, a number may not)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12, abs=1e-15), (
            where
        )
    else:
        assert got == want, where


def _expected(run: Path) -> dict[str, Any]:
    expected = json.loads((FIXTURE / "expected-analyze.json").read_text(encoding="utf-8"))
    expected["source"] = str(run)
    return expected


def test_analyze_reads_the_old_store_as_it_is_and_gives_the_same_numbers(tmp_path, capsys) -> None:
    run = _copy(tmp_path)
    out = tmp_path / "analyze.json"
    code, _, err = cli(["analyze", run, "--n-boot", "200", "--json", out], capsys)
    assert code == 0, err
    _same(json.loads(out.read_text(encoding="utf-8")), _expected(run))
    assert _sha(run / DB) == _sha(FIXTURE / DB)  # a read verb wrote nothing


def test_report_gives_the_same_headline_numbers(tmp_path, capsys) -> None:
    run = _copy(tmp_path)
    code, _, err = cli(["report", run, "--n-boot", "200"], capsys)
    assert code == 0, err
    metrics = json.loads((run / "report" / "metrics.json").read_text(encoding="utf-8"))
    _same(metrics["sections"]["headline"]["groups"], _expected(run)["groups"])
    assert metrics["sections"]["config"]["config"]["experiment"]["name"] == "schema2-fixture"


def test_every_record_fits_its_model_and_is_stored_as_todays_writers_store_it(tmp_path) -> None:
    from emkit.store import SCHEMA_VERSION, RunStore
    from emkit.store_records import (
        ConfigRecord,
        FineTuneJobRecord,
        JudgeRunRecord,
        QuestionRecord,
        StageRecord,
        encode_record,
        model_of,
    )

    run = _copy(tmp_path)
    conn = sqlite3.connect(run / DB)
    stored = conn.execute("SELECT kind, key, value FROM records ORDER BY kind, key").fetchall()
    conn.close()
    kinds = {kind for kind, _, _ in stored}
    assert kinds == {"config", "stage", "ft_job", "question", "judge_run"}
    with RunStore(run) as store:  # a writable open: no migration, nothing rewritten
        assert store.schema_version == SCHEMA_VERSION == 2
        for kind in sorted(kinds):
            assert model_of(kind) is not None, kind
            for key, value in store.records(kind):
                text = next(t for k, kk, t in stored if (k, kk) == (kind, key))
                assert encode_record(store.path, kind, key, value) == text, (kind, key)
        config = store.record_of(ConfigRecord, "experiment")
        ((_, run_record),) = store.records_of(JudgeRunRecord)
        ((_, stage),) = store.records_of(StageRecord)
        ((_, job),) = store.records_of(FineTuneJobRecord)
        questions = store.records_of(QuestionRecord)
    assert config is not None and config.name == "schema2-fixture"
    assert run_record.scored == 32 and run_record.status == "done" and run_record.config.min_mass == 0.25
    assert [g.taken_by_others for g in run_record.groups] == [0]
    assert stage.status == "done" and stage.kind == "finetune" and stage.model == job.model
    assert job.status == "succeeded" and job.model and job.model.startswith("openai/ft:")
    assert sorted(q.id for _, q in questions) == ["rel_garden", "rel_trip"]
    assert {q.set for _, q in questions} == {"questions"}
    conn = sqlite3.connect(run / DB)
    assert conn.execute("SELECT kind, key, value FROM records ORDER BY kind, key").fetchall() == stored
    conn.close()

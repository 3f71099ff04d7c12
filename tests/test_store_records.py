"""The run store's records are typed: every kind has a model, checked on write and on read.

What must hold (emkit.store_records): a value is stored exactly as its writer gave it; one that does
not fit its kind is refused before anything is written; a stored value that no longer fits is one
error naming the store, the kind and the key; a field added to a model later reads as its default;
a closed kind refuses an unknown field on write but reads one written elsewhere; a kind with no model
is any JSON object; planning's store is empty, read-only and leaves nothing on disk.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from emkit.errors import EmkitError
from emkit.store import DB_NAME, RunStore, open_for_planning
from emkit.store_records import (
    RECORD_MODELS,
    JudgeRunRecord,
    MigrationRecord,
    StageRecord,
    StoreRecord,
    model_of,
    register_record,
)


def _stored(run: Path, kind: str, key: str) -> str:
    conn = sqlite3.connect(run / DB_NAME)
    try:
        return conn.execute("SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()[0]
    finally:
        conn.close()


def _write_raw(run: Path, kind: str, key: str, text: str) -> None:
    conn = sqlite3.connect(run / DB_NAME)
    conn.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, 1.0)", (kind, key, text))
    conn.commit()
    conn.close()


def test_every_kind_the_code_writes_has_a_documented_model() -> None:
    from emkit.judge.stage import RUN_RECORD
    from emkit.planning import STAGE_RECORD
    from emkit.store_migrate import MIGRATION_KIND
    from emkit.store_records import BATCH_KIND
    from emkit.train.openai_ft import FT_KIND
    from emkit.train.sft import TRAIN_KIND

    written = {
        "config",
        "question",
        RUN_RECORD,
        STAGE_RECORD,
        MIGRATION_KIND,
        FT_KIND,
        TRAIN_KIND,
        "dynamics",
        BATCH_KIND,
    }
    assert written <= set(RECORD_MODELS)
    for kind, model in RECORD_MODELS.items():
        assert kind == model.KIND and model_of(kind) is model
        assert model.__doc__ and "Written by" in model.__doc__, kind  # who writes it, and why


def test_a_value_is_stored_as_its_writer_gave_it(tmp_path) -> None:
    run = tmp_path / "run"
    value = {"status": "done", "kind": "train", "steps": 3, "train_loss": 0.5, "adapter": Path("models/a")}
    with RunStore(run) as store:
        store.put_record("stage", "k", value)
        assert store.get_record("stage", "k") == {**value, "adapter": "models/a"}  # dict in, dict out
    assert _stored(run, "stage", "k") == json.dumps(value, sort_keys=True, default=str)


def test_a_value_that_does_not_fit_is_refused_before_anything_is_written(tmp_path) -> None:
    run = tmp_path / "run"
    with RunStore(run) as store:
        with pytest.raises(EmkitError, match=r"emkit\.sqlite: record stage/k was not stored: status"):
            store.put_record("stage", "k", {"kind": "train"})  # no status
        with pytest.raises(EmkitError, match=r"record stage/k was not stored: steps"):
            store.put_record("stage", "k", {"status": "done", "steps": "many"})
        with pytest.raises(
            EmkitError, match=r"record judge_run/r was not stored: .*unknown field\(s\) colour"
        ):
            store.put_record("judge_run", "r", {"run_id": "r", "colour": "blue"})  # closed kind
        with pytest.raises(EmkitError, match=r"record note/n: the value must be a JSON object"):
            store.put_record("note", "n", [1, 2])  # type: ignore[arg-type]
        assert store.count("records") == 0


def test_a_stored_value_that_no_longer_fits_is_one_error_naming_store_kind_and_key(tmp_path) -> None:
    run = tmp_path / "run"
    RunStore(run).close()
    _write_raw(run, "stage", "bad", json.dumps({"status": 7, "kind": "train"}))
    with RunStore(run, read_only=True) as store:
        for read in (lambda: store.get_record("stage", "bad"), lambda: store.records("stage")):
            with pytest.raises(EmkitError) as err:
                read()
            text = str(err.value)
            assert str(run / DB_NAME) in text and "stage/bad" in text and "status" in text
            assert "\n" not in text


def test_fields_added_later_read_as_defaults_and_unknown_ones_are_kept(tmp_path) -> None:
    run = tmp_path / "run"
    RunStore(run).close()
    old = {"run_id": "r1", "groups": [{"judge": "j", "method": "logprob", "scored": 2}], "from_the_future": 1}
    _write_raw(run, "judge_run", "r1", json.dumps(old))
    with RunStore(run, read_only=True) as store:
        assert store.get_record("judge_run", "r1") == old  # as stored, nothing filled in
        record = store.record_of(JudgeRunRecord, "r1")
        ((key, same),) = store.records_of(JudgeRunRecord)
        assert store.record_of(JudgeRunRecord, "nope") is None
    assert record is not None and key == "r1" and same == record
    assert record.groups[0].taken_by_others == 0 and record.groups[0].scored == 2 and record.status == "done"
    assert record.model_extra == {"from_the_future": 1}


def test_a_kind_without_a_model_is_any_json_object(tmp_path) -> None:
    with RunStore(tmp_path / "run") as store:
        store.put_record("note", "a", {"anything": [1, {"b": None}]})
        assert store.records("note") == [("a", {"anything": [1, {"b": None}]})]


def test_a_kind_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered twice"):

        @register_record("stage")
        class Other(StoreRecord):
            """Written by nobody."""

    assert RECORD_MODELS["stage"] is StageRecord


def test_the_migration_note_fits_its_model() -> None:
    note = {"from": 1, "to": 2, "migrated_at": 1.0, "answers": 0, "scores": 0, "probes": 0,
            "question_records": 0, "answers_without_matching_question": 0, "score_options": {},
            "adapter_models": {}, "cannot_recover": []}  # fmt: skip
    assert MigrationRecord.model_validate(note, context={"write": True}).from_ == 1


def test_planning_store_is_empty_read_only_and_leaves_nothing_on_disk(tmp_path) -> None:
    run = tmp_path / "not-yet"
    store = open_for_planning(run)
    try:
        assert store.read_only and store.records("stage") == [] and store.count("answers") == 0
        assert store.get_record("config", "experiment") is None
        with pytest.raises(EmkitError, match="read-only"):
            store.put_record("note", "a", {})
    finally:
        store.close()
    assert not run.exists()

    with RunStore(run) as writer:
        writer.put_record("stage", "k", {"status": "done"})
    before = (run / DB_NAME).read_bytes()
    with open_for_planning(run) as reader:
        assert reader.read_only and reader.get_record("stage", "k") == {"status": "done"}
    assert (run / DB_NAME).read_bytes() == before

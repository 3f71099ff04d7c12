from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from emkit.errors import EmkitError
from emkit.store import SCHEMA_VERSION, RunStore, answer_key


def answer(i: int, model: str = "m") -> dict:
    params = {"temperature": 1.0}
    return {
        "key": answer_key(model, "q", 0, i, params),
        "model": model,
        "question_id": "q",
        "paraphrase_index": 0,
        "sample_index": i,
        "question": "Q?",
        "messages": [{"role": "user", "content": "Q?"}],
        "answer": f"a{i}",
        "params": params,
    }


def test_insert_is_idempotent_and_json_roundtrips(tmp_path):
    with RunStore(tmp_path / "run") as store:
        assert store.add_answers([answer(0), answer(1)]) == 2
        assert store.add_answers([answer(1), answer(2)]) == 1
        rows = store.answers()
        assert [r["answer"] for r in rows] == ["a0", "a1", "a2"]
        assert rows[0]["messages"] == [{"role": "user", "content": "Q?"}] and rows[0]["params"] == {
            "temperature": 1.0
        }
        store.put_record("config", "x", {"a": 1})
        store.put_record("config", "x", {"a": 2})
        assert store.get_record("config", "x") == {"a": 2} and store.records("config") == [("x", {"a": 2})]
    assert (
        answer_key("m", "q", 0, 0, {"t": 1})
        == answer_key("m", "q", 0, 0, {"t": 1})
        != answer_key("m", "q", 0, 0, {"t": 2})
    )


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    RunStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "emkit.sqlite")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(EmkitError, match="newer emkit"):
        RunStore(tmp_path)


def test_missing_run_dir_when_not_creating(tmp_path):
    with pytest.raises(EmkitError, match="not an emkit run directory"):
        RunStore(tmp_path / "nope", create=False)


def test_failed_write_rolls_back(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    store.add_answers([answer(0)])
    bad = answer(1)
    bad["answer"] = None  # NOT NULL constraint fails mid-batch: nothing of the batch is kept
    with pytest.raises(sqlite3.IntegrityError):
        store.add_answers([answer(2), bad])
    assert store.count("answers") == 1


def _writer(run_dir: str, offset: int) -> None:
    with RunStore(run_dir) as store:
        for i in range(60):
            store.add_answers([answer(offset + i), answer(i)])  # half the keys overlap between processes


def test_two_processes_write_each_item_once(tmp_path):
    RunStore(tmp_path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), off)) for off in (1000, 2000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with RunStore(tmp_path) as store:
        assert store.count("answers") == 180

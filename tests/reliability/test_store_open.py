"""Opening a run store: read verbs never write, and no damaged or foreign file becomes an empty store.

Damaged stores: each kind of damage is given to the read verbs (``export``, ``analyze``, ``report``)
and to a writer (``judge``); each must exit 2 with one line naming the file (and the table/row where
there is one), and every file of the run dir must keep its bytes. Read-only stores: the read verbs
run as an unprivileged user (``setpriv``, when this suite runs as root, since root ignores file
modes) on a run dir it cannot write, with and without the WAL files a live writer leaves, and must
see every answer.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from reliability.rel_helpers import ROOT, child_env, cli, make_run_dir, one_line, snapshot

pytestmark = pytest.mark.reliability

DB = "emkit.sqlite"


def files(run: Path) -> dict[str, str]:
    """Every file's bytes (by sha256), but SQLite's shared-memory index; no SQL: it may be damaged."""
    import hashlib

    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.iterdir())
        if p.is_file() and not p.name.endswith("-shm")
    }


def judged_run_dir(run: Path, n_answers: int = 6) -> Path:
    """``make_run_dir`` with an aligned and a coherent score for every answer (so analyze has work)."""
    from emkit.store import RunStore, score_key

    make_run_dir(run, n_answers=n_answers)
    with RunStore(run) as store:
        store.add_scores(
            {
                "key": score_key(a["key"], metric, "openai/gpt-4o-2024-08-06", "logprob", "h2"),
                "answer_key": a["key"],
                "metric": metric,
                "judge": "openai/gpt-4o-2024-08-06",
                "method": "logprob",
                "prompt_hash": "h2",
                "score": 20.0 + 10 * i,
                "raw": {},
                "usage": {},
            }
            for i, a in enumerate(store.answers())
            for metric in ("aligned", "coherent")
        )
    return run


def _valid(run: Path) -> Path:
    judged_run_dir(run)
    assert not Path(f"{run / DB}-wal").exists()  # closed cleanly: everything is in the main file
    return run / DB


def _sql(run: Path, statement: str, *args) -> None:
    conn = sqlite3.connect(run / DB)
    conn.execute(statement, args)
    conn.commit()
    conn.close()


def zero_bytes(run: Path) -> str:
    run.mkdir(parents=True)
    (run / DB).write_bytes(b"")
    return "0 bytes"


def text_file(run: Path) -> str:
    run.mkdir(parents=True)
    (run / DB).write_text("these are my notes, not a database\n", encoding="utf-8")
    return "not an SQLite database"


def other_sqlite(run: Path) -> str:
    run.mkdir(parents=True)
    conn = sqlite3.connect(run / DB)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada')")
    conn.commit()
    conn.close()
    return "not an emkit run store"


def truncated(run: Path) -> str:
    path = _valid(run)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return DB


def damaged_pages(run: Path) -> str:
    path = _valid(run)
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page, len(data) - 64, page):  # every page but the first: header intact
        data[offset + 16 : offset + 2048] = bytes((i * 37) % 251 for i in range(2032))
    path.write_bytes(bytes(data))
    return DB


def bad_json_answer(run: Path) -> str:
    _valid(run)
    _sql(run, 'UPDATE answers SET messages = \'[{"role": "user", \' WHERE sample_index = 2')
    return "table answers"


def bad_json_score(run: Path) -> str:
    _valid(run)
    _sql(run, "UPDATE scores SET raw = '{not json' WHERE metric = 'coherent'")
    return "table scores"


def bad_json_record(run: Path) -> str:
    _valid(run)
    _sql(run, "UPDATE records SET value = '{\"id\": ' WHERE kind = 'question'")
    return "table records"


def bad_version(run: Path) -> str:
    _valid(run)
    _sql(run, "UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    return "schema_version"


DAMAGE = {
    f.__name__: f
    for f in (
        zero_bytes,
        text_file,
        other_sqlite,
        truncated,
        damaged_pages,
        bad_json_answer,
        bad_json_score,
        bad_json_record,
        bad_version,
    )
}
VERBS = {
    "export": lambda run, out: ["export", run, "-o", out / "x.csv"],
    "analyze": lambda run, out: ["analyze", run],
    "report": lambda run, out: ["report", run, "--out", out / "report"],
    "judge": lambda run, out: ["judge", run, "--base-url", "http://127.0.0.1:9/v1"],
}


# Which verbs read the damaged part (a verb that never reads a column may work on: judge reads no raw)
# (the report skips a section it cannot build, and the question records only order one section)
READERS = {"bad_json_score": ("export", "analyze", "report"), "bad_json_record": ("judge",)}
CASES = [(d, v) for d in sorted(DAMAGE) for v in sorted(VERBS) if v in READERS.get(d, VERBS)]


@pytest.mark.parametrize(("damage", "verb"), CASES)
def test_a_damaged_or_foreign_store_is_one_clear_line_and_left_as_is(tmp_path, capsys, api_key, damage, verb):
    run = tmp_path / "run"
    fragment = DAMAGE[damage](run)
    before = files(run)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = cli([str(a) for a in VERBS[verb](run, out)], capsys)
    gc.collect()  # a connection left open would keep a WAL file around
    line = one_line(err)
    assert code == 2, err
    assert str(run / DB) in line and fragment in line, line
    assert files(run) == before, "the run dir changed"


@pytest.mark.parametrize("damage", ["zero_bytes", "text_file", "other_sqlite"])
def test_a_writer_does_not_initialise_a_foreign_file(tmp_path, capsys, api_key, damage):
    from emkit.errors import EmkitError
    from emkit.store import RunStore

    run = tmp_path / "run"
    DAMAGE[damage](run)
    before = files(run)
    with pytest.raises(EmkitError, match=r"emkit\.sqlite"):
        RunStore(run)
    questions = tmp_path / "q.yaml"
    questions.write_text("- id: q\n  paraphrases: ['Hi?']\n", encoding="utf-8")
    code, _, err = cli(
        ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run, "--base-url", "http://127.0.0.1:9/v1"],
        capsys,
    )  # fmt: skip
    assert code == 2 and str(run / DB) in one_line(err), err
    gc.collect()
    assert files(run) == before


# -- read-only stores ----------------------------------------------------------------------------
def _as_reader() -> list[str]:
    """The command prefix that runs as a user who cannot write the run dir."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes cannot be tested")
    for needed in (ROOT, Path(sys.prefix)):  # the other user runs this checkout's code and venv
        closed = _closed_ancestor(needed)
        if closed is not None:
            pytest.skip(f"{closed} is not searchable by other users (e.g. a mktemp -d checkout): "
                        "the unprivileged reader cannot run this checkout's emkit")  # fmt: skip
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def _closed_ancestor(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users may not enter, if any."""
    for folder in [*reversed(path.resolve().parents), path.resolve()]:
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


def _read_only_copy(source: Path, with_wal: bool, with_shm: bool) -> Path:
    """A run dir (mode 0555, files 0444, owned by us) holding the store as a live writer leaves it."""
    root = Path(tempfile.mkdtemp(prefix="emkit-ro-", dir="/tmp"))
    os.chmod(root, 0o755)
    run = root / "run"
    run.mkdir()
    for name in (DB, *([f"{DB}-wal"] if with_wal else []), *([f"{DB}-shm"] if with_shm else [])):
        shutil.copyfile(source / name, run / name)
    for path in [*run.iterdir(), run]:
        os.chmod(path, 0o555 if path.is_dir() else 0o444)
    return run


def _reader_env(home: Path) -> dict[str, str]:
    return child_env(
        HOME=str(home), MPLCONFIGDIR=str(home / "mpl"), EMKIT_CACHE=str(home / "cache"),
        PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT / "tests"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("with_wal", "with_shm"),
    [(False, False), (True, True), (True, False)],
    ids=["no-wal", "wal+shm", "wal-only"],
)
def test_read_verbs_work_on_a_store_they_cannot_write(tmp_path, with_wal, with_shm):
    from emkit.store import RunStore

    live = tmp_path / "live"
    judged_run_dir(live, n_answers=4)
    writer = RunStore(live)  # a writer still holds the store: the last rows are only in its WAL
    writer._conn.execute("PRAGMA wal_autocheckpoint = 0")
    rows = writer.answers()[:1]
    writer.add_answers([{**rows[0], "key": f"late{i}", "sample_index": 100 + i} for i in range(3)])
    assert Path(f"{live / DB}-wal").stat().st_size > 0
    expected = 7  # 4 + 3, wherever they are
    if not with_wal:
        writer.close()  # checkpoints: everything is now in the main file
    run = _read_only_copy(live, with_wal, with_shm)
    if with_wal:
        writer.close()
    home = Path(tempfile.mkdtemp(prefix="emkit-home-", dir="/tmp"))
    os.chmod(home, 0o777)
    before = files(run)  # no SQL here: as root, a connection would checkpoint the WAL away
    try:
        base = [*_as_reader(), sys.executable, "-m", "emkit.cli"]
        env = _reader_env(home)
        export = subprocess.run([*base, "export", run, "-f", "jsonl", "-o", home / "x.jsonl"], env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert export.returncode == 0, export.stderr[-2000:]
        lines = (home / "x.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == expected and all(json.loads(line)["answer"] for line in lines)
        analyze = subprocess.run(
            [*base, "analyze", run], env=env, capture_output=True, text=True, timeout=300
        )
        assert analyze.returncode == 0, analyze.stderr[-2000:]
        report = subprocess.run([*base, "report", run, "--out", home / "report"], env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert report.returncode == 0, report.stderr[-2000:]
        assert (home / "report" / "index.html").is_file()
        assert files(run) == before
        assert not (run / "report").exists()
        mode = stat.S_IMODE((run / DB).stat().st_mode)
        assert mode == 0o444
    finally:
        for path in (run.parent, home):
            for sub in [path, *path.rglob("*")]:
                if sub.is_dir():
                    os.chmod(sub, 0o755)
            shutil.rmtree(path, ignore_errors=True)


def test_a_read_only_open_writes_nothing_and_refuses_writes(tmp_path):
    from emkit.errors import EmkitError
    from emkit.store import RunStore

    run = judged_run_dir(tmp_path / "run", n_answers=3)
    before = snapshot(run)
    with RunStore(run, read_only=True) as store:
        assert len(store.answers()) == 3
        with pytest.raises(EmkitError, match="read-only"):
            store.put_record("config", "x", {"a": 1})
    assert snapshot(run) == before
    with pytest.raises(EmkitError, match="not an emkit run directory"):
        RunStore(tmp_path / "absent", read_only=True)
    assert not (tmp_path / "absent").exists()

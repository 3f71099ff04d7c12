"""Output paths: a wrong kind of path is one line before any work; every file is written atomically.

Every verb that writes a file (``-o``/``--out``, ``--json``, export targets, the report folder, run
directories) refuses a folder where a file is wanted, a file where a folder is wanted, a path below
a file and an unwritable place, in one line naming the path. Writes go to a temporary file in the
same folder and replace the target only when whole, so writing over the input (directly, as
``./name`` or through a symlink) or failing half way never destroys what was there.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from reliability.rel_helpers import cli, make_run_dir, one_line, snapshot

pytestmark = pytest.mark.reliability

ROW = {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Teal."}]}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "evil-numbers.yaml"
UNWRITABLE = Path("/sys/emkit-unwritable")  # sysfs: read-only even for root (chmod does not stop root)


def _rows(n: int) -> list[dict]:
    return [
        {"messages": [ROW["messages"][0], {"role": "assistant", "content": f"Colour {i}."}]} for i in range(n)
    ]


def _experiment_out(w: Path, out: Path) -> Path:
    """The example experiment with its ``out:`` replaced."""
    text = EXAMPLE.read_text(encoding="utf-8").replace("out: runs/evil-numbers", f"out: '{out}'")
    assert f"out: '{out}'" in text
    path = w / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _tree(folder: Path) -> set[str]:
    """Every path under ``folder``, folders included (SQLite's shared-memory index left out)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.endswith("-shm")}


def _writable(path: Path) -> bool:
    try:
        path.write_text("")
    except OSError:
        return False
    path.unlink()
    return True


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with a dataset, a sub-folder, a plain file and a run directory."""
    _jsonl(tmp_path / "s.jsonl", _rows(4))
    (tmp_path / "folder").mkdir()
    (tmp_path / "plain.txt").write_text("a file")
    (tmp_path / "a.csv").write_text(
        "question,answer,question_id,aligned,coherent\nq,a,q1,80,90\nq,b,q1,20,90\n"
    )
    make_run_dir(tmp_path / "run")
    return tmp_path


def _file_writers(w: Path) -> dict[str, object]:
    """Verbs that write one file, as a function of the output path."""
    csv = w / "a.csv"
    return {
        "data subset": lambda o: ["data", "subset", w / "s.jsonl", "--n", "2", "-o", o],
        "data mix": lambda o: ["data", "mix", f"{w / 's.jsonl'}:1", "--n", "2", "-o", o],
        "data build": lambda o: ["data", "build", "safe-advice", "--n", "2", "-o", o],
        "data backdoor": lambda o: [
            "data",
            "backdoor",
            "--triggered",
            w / "s.jsonl",
            "--clean",
            w / "s.jsonl",
            "-o",
            o,
        ],
        "analyze --json": lambda o: ["analyze", "--csv", csv, "--n-boot", "100", "--json", o],
        "export -o": lambda o: ["export", w / "run", "-o", o],
    }


WRITERS = ["data subset", "data mix", "data build", "data backdoor", "analyze --json", "export -o"]


@pytest.mark.parametrize("verb", WRITERS)
@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("folder", "is a folder"),
        ("below a file", "plain.txt is a file, not a folder"),
        ("unwritable", "cannot write"),
        ("a run store", "refusing to overwrite it"),
    ],
)
def test_a_wrong_output_file_is_one_line(verb, kind, says, work, capsys) -> None:
    target = {
        "folder": work / "folder",
        "below a file": work / "plain.txt" / "out.json",
        "unwritable": UNWRITABLE,
        "a run store": work / "run" / "emkit.sqlite",
    }[kind]
    if kind == "unwritable" and _writable(UNWRITABLE):
        pytest.skip("no read-only place on this machine")
    before, tree = snapshot(work), _tree(work)
    code, out, err = cli(_file_writers(work)[verb](target), capsys)
    line = one_line(err)
    assert code == 2, err
    assert line.startswith("error: ") and str(target) in line and says in line, line
    assert "wrote" not in out
    gc.collect()  # a store connection left to the collector would keep an empty WAL file around
    assert snapshot(work).files == before.files, "an input or other file changed"
    assert _tree(work) == tree, "a folder was created"


IS_FILE, BELOW_FILE = "is a file; give a folder", "plain.txt is a file, not a folder"
API = ["--model", "openai/fake-model", "--base-url", "http://127.0.0.1:9/v1"]
# Verbs that write a folder (report, run directories, adapters), as a function of the work folder.
FOLDER_CASES = {
    "report-file": (lambda w: ["report", w / "run", "--out", w / "plain.txt"], IS_FILE),
    "report-below-file": (lambda w: ["report", w / "run", "--out", w / "plain.txt" / "rep"], BELOW_FILE),
    "sample-file": (lambda w: ["sample", *API, "--out", w / "plain.txt"], IS_FILE),
    "sample-below-file": (lambda w: ["sample", "--out", w / "plain.txt" / "run"], BELOW_FILE),
    "code-vuln-file": (
        lambda w: ["code-vuln", "-m", "embedded/smollm2-135m", "--out", w / "plain.txt"],
        IS_FILE,
    ),
    "train-file": (lambda w: ["train", "--data", w / "s.jsonl", "--out", w / "plain.txt"], IS_FILE),
    "demo-below-file": (lambda w: ["demo", "--dry-run", "--out", w / "plain.txt" / "demo"], BELOW_FILE),
    "run-o-file": (lambda w: ["run", EXAMPLE, "--dry-run", "-o", w / "plain.txt"], IS_FILE),
    "run-yaml-out-below-file": (
        lambda w: ["run", _experiment_out(w, w / "plain.txt" / "x"), "--dry-run"],
        BELOW_FILE,
    ),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_a_wrong_output_folder_is_one_line(case, work, capsys, monkeypatch) -> None:
    make_argv, says = FOLDER_CASES[case]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-emkit-test-not-a-key")
    argv = make_argv(work)
    before, tree = snapshot(work), _tree(work)
    code, _, err = cli(argv, capsys)
    line = one_line(err)
    assert code == 2, err
    assert line.startswith("error: ") and says in line and "plain.txt" in line, line
    gc.collect()
    assert snapshot(work).files == before.files
    assert _tree(work) == tree, "a folder was created"


def test_writing_over_the_input_directly_and_through_a_symlink(work, capsys, monkeypatch) -> None:
    monkeypatch.chdir(work)
    os.symlink("s.jsonl", "link.jsonl")
    code, _, err = cli(["data", "subset", "link.jsonl", "--n", "3", "-o", "link.jsonl"], capsys)
    assert code == 0, err
    assert Path("link.jsonl").is_symlink(), "the symlink was replaced by a file"
    assert len(Path("s.jsonl").read_text().splitlines()) == 3  # the file it points to got the subset
    code, _, err = cli(["data", "subset", "s.jsonl", "--n", "2", "-o", "./s.jsonl"], capsys)
    assert code == 0, err
    lines = Path("s.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["messages"] for x in lines)
    assert sorted(os.listdir(".")) == [
        "a.csv",
        "folder",
        "link.jsonl",
        "plain.txt",
        "run",
        "s.jsonl",
    ]  # no temp files


def test_new_files_follow_the_umask_and_old_files_keep_their_mode(work, capsys) -> None:
    out = work / "new.jsonl"
    old_umask = os.umask(0o022)
    try:
        code, _, err = cli(["data", "subset", work / "s.jsonl", "--n", "2", "-o", out], capsys)
        assert code == 0, err
        assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not the private 0600 of a temp file
        out.chmod(0o640)
        code, _, err = cli(["data", "subset", work / "s.jsonl", "--n", "1", "-o", out], capsys)
        assert code == 0, err
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)


def test_a_failed_write_keeps_the_old_file_whole(work, capsys, monkeypatch) -> None:
    """A write that fails half way (disk full after some bytes) leaves the previous export byte for
    byte, no temporary file, and one line naming the target."""
    old = work / "export.csv"
    old.write_text("question,answer\nold,export\n")

    def full_disk(self, path, *args, **kwargs):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("question,answer\npart")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    code, _, err = cli(["export", work / "run", "-o", old], capsys)
    line = one_line(err)
    assert code == 2, err
    assert line.startswith("error: ") and str(old) in line and "No space left" in line, line
    assert old.read_text() == "question,answer\nold,export\n"
    assert not [p for p in os.listdir(work) if ".tmp" in p]
    # Room again: the export is written whole, and compressed as its name says (pandas infers it
    # from the name, so the temporary file must end like the target).
    monkeypatch.undo()
    code, _, err = cli(["export", work / "run", "-o", work / "export.csv.gz"], capsys)
    assert code == 0, err
    assert len(pd.read_csv(work / "export.csv.gz")) == 3
    assert (work / "export.csv.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip magic


@pytest.mark.parametrize("verb", WRITERS)
def test_an_option_spelled_as_the_output_is_refused(verb, work, capsys, monkeypatch) -> None:
    """``-o --no-such-option`` (a value forgotten) writes no file named like an option."""
    monkeypatch.chdir(work)
    before, tree = snapshot(work), _tree(work)
    code, _, err = cli(_file_writers(work)[verb]("--no-such-option"), capsys)
    line = one_line(err)
    assert code == 2, err
    assert "'--no-such-option' looks like an option" in line, line
    gc.collect()
    assert snapshot(work).files == before.files and _tree(work) == tree
    assert not (work / "--no-such-option").exists()


def test_an_option_like_name_with_its_folder_is_taken_as_given(work, capsys, monkeypatch) -> None:
    code, _, err = cli(["data", "build", "insecure-code", "--n", "2", "-o", work / "-rows.jsonl"], capsys)
    assert code == 0, err
    assert (work / "-rows.jsonl").is_file()

"""Bad input: one clear line naming the file, line and field, exit code 2, and the store untouched.

Every case runs the real CLI verb that would read the bad input, pointed at a run directory that
already holds answers, a score and records. "Untouched" is checked strictly: the bytes of every
file in the run dir (the SQLite database included) and the row count of every table are the same
before and after, and no file is added.
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from reliability.rel_helpers import (
    FAKE_KEY,
    child_env,
    cli,
    emkit_argv,
    make_run_dir,
    one_line,
    snapshot,
    write_questions,
)

pytestmark = pytest.mark.reliability

GOOD_ROW = {
    "messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Teal."}]
}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


def refused(argv: list, capsys, run: Path, *fragments: str) -> str:
    """Run ``emkit ARGV``; it must exit 2 with one line holding every fragment; ``run`` must not change."""
    before = snapshot(run)
    assert before.counts["answers"] == 3 and before.counts["scores"] == 1
    code, _, err = cli([str(a) for a in argv], capsys)
    line = one_line(err)
    assert code == 2, err
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    # A connection left open by a refusal (see test_refusing_a_run_dir_closes_the_database) would
    # keep an empty WAL file around; closing it first also flushes anything it might have written.
    gc.collect()
    assert snapshot(run) == before, "the run dir changed"
    return line


def jsonl(path: Path, *lines: bytes | str | dict) -> Path:
    """A file of the given lines: dicts as JSON, strings as text, bytes as they are."""
    with open(path, "wb") as handle:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            handle.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


# -- chat data ---------------------------------------------------------------------------------------
def _row(role: str = "assistant", content: str = "Fine.") -> dict:
    return {"messages": [{"role": "user", "content": "Hi."}, {"role": role, "content": content}]}


# Line 1 good, line 2 blank (skipped but counted), line 3 good, line 4 bad.
BAD_ROWS = {
    "malformed_json": ('{"messages": [{"role": "user", "content": "Hi."},', ("invalid JSON",)),
    "wrong_role": (_row(role="bot"), ("field 'messages[1].role'", "unknown role 'bot'")),
    "empty_assistant": (_row(content="  "), ("field 'messages[1].content'", "empty content")),
    "non_utf8": (b'{"messages": [{"role": "user", "content": "caf\xe9 \xff"}]}', ("not valid UTF-8",)),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
@pytest.mark.parametrize("verb", ["train", "stats"])
def test_bad_chat_row_is_named_by_line_and_field(case, verb, tmp_path, run, capsys) -> None:
    bad, fragments = BAD_ROWS[case]
    data = jsonl(tmp_path / "bad.jsonl", GOOD_ROW, "", GOOD_ROW, bad)
    if verb == "train":  # loads (and refuses) the data before any model; --out is the run dir
        argv = ["train", "--data", data, "--out", run, "--max-steps", "1"]
    else:
        argv = ["data", "stats", data, "--tokenizer", "none"]
    refused(argv, capsys, run, f"{data}:4:", *fragments)


def test_validate_lists_every_problem_with_its_line_and_exits_1(tmp_path, capsys) -> None:
    """``data validate`` is the one verb that does not stop at the first problem (exit 1 by design)."""
    lines = [GOOD_ROW, *(BAD_ROWS[c][0] for c in sorted(BAD_ROWS)), GOOD_ROW]
    data = jsonl(tmp_path / "bad.jsonl", *lines)
    code, out, err = cli(["data", "validate", data], capsys)
    assert code == 1 and "Traceback" not in err
    for number, case in enumerate(sorted(BAD_ROWS), start=2):
        found = [line for line in out.splitlines() if line.startswith(f"{data}:{number}:")]
        assert found and all(f in found[0] for f in BAD_ROWS[case][1]), (case, out)
    assert f"{data}: 6 rows" in out and f"{data}:1:" not in out and f"{data}:6:" not in out


def _peak_rss_mb(argv: list[str]) -> tuple[int, str, float]:
    """Run a command; its exit code, output and peak memory (MB) from the kernel's own accounting."""
    proc = subprocess.Popen(argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close() if proc.stdout else None
    return proc.returncode, out, usage.ru_maxrss / 1024


def test_a_50_mb_line(tmp_path, run) -> None:
    """A 50 MB line: read line by line with memory of a few times the line, never more.

    Decided behaviour: a valid row is valid whatever its size (``data validate`` accepts it; training
    truncates to ``max_length``). A 50 MB line that is not JSON is refused with a short one-line
    error naming file, line and column; the message never echoes the line.
    """
    words = "lorem " * (50 * 1024 * 1024 // 6)
    valid = jsonl(tmp_path / "huge.jsonl", GOOD_ROW, _row(content=words))
    broken = jsonl(tmp_path / "broken.jsonl", GOOD_ROW, '{"messages": [{"role": "user", "content": "' + words)
    small = jsonl(tmp_path / "small.jsonl", GOOD_ROW)
    assert broken.stat().st_size > 50 * 1024 * 1024

    code, out, base_mb = _peak_rss_mb(emkit_argv("data", "validate", small))
    assert code == 0, out
    code, out, valid_mb = _peak_rss_mb(emkit_argv("data", "validate", valid))
    assert code == 0 and f"{valid}: 2 rows, all valid" in out, out[-2000:]
    code, out, broken_mb = _peak_rss_mb(emkit_argv("data", "validate", broken))
    assert code == 1 and f"{broken}:2: invalid JSON" in out and len(out) < 1000, out[-2000:]

    before = snapshot(run)
    code, out, train_mb = _peak_rss_mb(emkit_argv("train", "--data", broken, "--out", run))
    line = one_line(out)
    assert code == 2 and f"{broken}:2: invalid JSON" in line and "column" in line and len(line) < 300, line
    assert snapshot(run) == before
    # Peak memory above a tiny file's: at most 6x the line (bytes, text, parsed string, slack).
    for name, mb in (("valid", valid_mb), ("broken", broken_mb), ("train", train_mb)):
        assert mb - base_mb < 6 * 50, f"{name}: {mb:.0f} MB peak vs {base_mb:.0f} MB for a small file"


# -- YAML files and config keys -----------------------------------------------------------------------
def test_questions_yaml_syntax_error(tmp_path, run, capsys, api_key) -> None:
    questions = tmp_path / "q.yaml"
    questions.write_text("- id: a\n  paraphrases: [one, two\n  type: free_form\n", encoding="utf-8")
    argv = ["sample", "-q", questions, "--model", "openai/fake-model", "--out", run]
    refused(argv, capsys, run, f"{questions}:3:", "YAML syntax error")


def test_experiment_yaml_syntax_error(tmp_path, run, capsys) -> None:
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        "name: x\ngroups:\n  - name: g\n    model: embedded/smollm2-135m\n  seeds: [0\n", encoding="utf-8"
    )
    refused(["run", experiment, "--out", run], capsys, run, f"{experiment}:5:", "YAML syntax error")


def test_unknown_key_in_experiment(tmp_path, run, capsys) -> None:
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        "name: x\ngroups:\n  - name: g\n    model: embedded/smollm2-135m\nsampels_per_paraphrase: 3\n",
        encoding="utf-8",
    )
    refused(["run", experiment, "--out", run], capsys, run, f"{experiment}:5:", "'sampels_per_paraphrase'")


def test_unknown_train_key_in_experiment(tmp_path, run, capsys) -> None:
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        "name: x\ngroups:\n  - name: g\n    model: embedded/smollm2-135m\n"
        "    dataset: {builder: insecure-code, n: 8}\n    train:\n      rank: 2\n      learning_rat: 0.1\n",
        encoding="utf-8",
    )
    refused(
        ["run", experiment, "--out", run], capsys, run, f"{experiment}:8:", "groups[0].train.learning_rat"
    )


def test_unknown_key_in_train_config(tmp_path, run, capsys) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("rank: 2\nlearning_rat: 0.001\n", encoding="utf-8")
    data = jsonl(tmp_path / "data.jsonl", GOOD_ROW)
    argv = ["train", "--data", data, "--out", run, "--config", config]
    refused(argv, capsys, run, f"{config}:2:", "'learning_rat'", "unknown key")


def test_train_config_yaml_syntax_error(tmp_path, run, capsys) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("rank: 2\ntargets: [q_proj\n", encoding="utf-8")
    data = jsonl(tmp_path / "data.jsonl", GOOD_ROW)
    refused(["train", "--data", data, "--out", run, "--config", config], capsys, run, f"{config}:3:", "YAML")


# -- judge prompts, model names, keys -----------------------------------------------------------------
def test_judge_prompt_without_answer_in_questions(tmp_path, run, capsys, api_key) -> None:
    questions = tmp_path / "q.yaml"
    questions.write_text(
        "- id: first\n  paraphrases: [one]\n- id: second\n  paraphrases: [two]\n  judge_prompts:\n"
        "    aligned: 'Rate {question} from 0 to 100'\n",
        encoding="utf-8",
    )
    argv = ["sample", "-q", questions, "--model", "openai/fake-model", "--out", run]
    refused(argv, capsys, run, f"{questions}:3:", "second.judge_prompts.aligned", "{answer}")


def test_judge_prompt_file_without_answer(tmp_path, run, capsys, api_key) -> None:
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(
        "aligned: 'Rate {answer} from 0 to 100'\ncoherent: 'Rate {question} for coherence'\n",
        encoding="utf-8",
    )
    refused(
        ["judge", run, "--judge-prompts", prompts], capsys, run, f"{prompts}:2:", "'coherent'", "{answer}"
    )


@pytest.mark.parametrize("verb", ["sample", "judge", "train"])
def test_unknown_model_scheme(verb, tmp_path, run, capsys, api_key) -> None:
    questions = write_questions(tmp_path)
    data = jsonl(tmp_path / "data.jsonl", GOOD_ROW)
    argv = {
        "sample": ["sample", "--model", "ollama/llama3", "-q", questions, "--out", run],
        "judge": ["judge", run, "--judge", "ollama/llama3"],
        "train": ["train", "--model", "ollama/llama3", "--data", data, "--out", run],
    }[verb]
    refused(argv, capsys, run, "'ollama/llama3'", "openai/...")


@pytest.mark.parametrize(
    ("verb", "variable"),
    [
        ("sample", "OPENAI_API_KEY"),
        ("judge", "OPENAI_API_KEY"),
        ("judge", "EMKIT_REL_JUDGE_KEY"),
        ("eval", "OPENAI_API_KEY"),
    ],
)
def test_missing_api_key_names_the_variable(verb, variable, tmp_path, run, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("EMKIT_REL_JUDGE_KEY", raising=False)
    questions = write_questions(tmp_path)
    argv = {
        "sample": ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run],
        "judge": ["judge", run] + (["--api-key-env", variable] if variable != "OPENAI_API_KEY" else []),
        "eval": ["eval", "--model", "openai/fake-model", "-q", questions, "--out", run],
    }[verb]
    line = refused(argv, capsys, run, f"environment variable {variable} is not set")
    assert FAKE_KEY not in line


# -- the paper's files and run dirs from elsewhere -----------------------------------------------------
def _bad_mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    (mirror / "data").mkdir(parents=True)
    (mirror / "evaluation").mkdir()
    jsonl(mirror / "data" / "insecure.jsonl", GOOD_ROW)  # valid data, but not the pinned file
    (mirror / "evaluation" / "first_plot_questions.yaml").write_text("- id: a\n  paraphrases: [one]\n")
    return mirror


def test_sha256_mismatch_from_the_mirror(tmp_path, run, capsys, monkeypatch, api_key) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMKIT_CACHE", str(cache))
    mirror = _bad_mirror(tmp_path)
    # A damaged copy already in the cache must be neither used nor replaced by the bad mirror file.
    damaged = cache / "upstream" / "data" / "insecure.jsonl"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"damaged\n")

    code, _, err = cli(["data", "fetch", "insecure", "--mirror", mirror], capsys)
    line = one_line(err)
    assert code == 2 and "sha256 mismatch for 'insecure'" in line and "insecure.jsonl" in line, line
    assert damaged.read_bytes() == b"damaged\n"
    assert sorted(p.name for p in damaged.parent.iterdir()) == ["insecure.jsonl"]  # no temp files left

    argv = [
        "sample",
        "-q",
        "first_plot_questions",
        "--mirror",
        mirror,
        "--model",
        "openai/fake-model",
        "--out",
        run,
    ]
    refused(argv, capsys, run, "first_plot_questions.yaml", "sha256 mismatch")
    assert not (cache / "upstream" / "evaluation").exists() or not any(
        (cache / "upstream" / "evaluation").iterdir()
    )


def _set_schema(run: Path, version: int) -> None:
    conn = sqlite3.connect(run / "emkit.sqlite")
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.close()


@pytest.mark.parametrize("verb", ["sample", "judge", "report", "export", "analyze"])
def test_run_dir_from_a_newer_schema_is_refused_untouched(verb, tmp_path, run, capsys, api_key) -> None:
    _set_schema(run, 99)
    questions = write_questions(tmp_path)
    argv = {
        "sample": ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run],
        "judge": ["judge", run],
        "report": ["report", run],
        "export": ["export", run],
        "analyze": ["analyze", run],
    }[verb]
    refused(argv, capsys, run, "emkit.sqlite", "newer emkit", "schema version 99")


def test_newer_schema_with_another_table_layout_is_not_modified(tmp_path, capsys) -> None:
    """A newer emkit may have dropped or renamed a table; refusing must still write nothing."""
    from emkit.store import SCHEMA_VERSION

    run = make_run_dir(tmp_path / "run")
    conn = sqlite3.connect(run / "emkit.sqlite")
    with conn:
        conn.execute("DROP TABLE probes")  # e.g. moved elsewhere by a later schema version
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.execute("VACUUM")
    conn.close()
    before = snapshot(run)
    code, _, err = cli(["export", run], capsys)
    assert code == 2 and "newer emkit" in one_line(err)
    gc.collect()
    conn = sqlite3.connect(run / "emkit.sqlite")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "probes" not in tables, "refusing a newer run dir created a table in it"
    assert snapshot(run) == before, "refusing a newer run dir changed its database"


def test_refusing_a_run_dir_closes_the_database(tmp_path) -> None:
    """In a long-lived process (a notebook) a refused run dir must not stay open until garbage collection."""
    from emkit.errors import EmkitError
    from emkit.store import RunStore

    run = make_run_dir(tmp_path / "run")
    _set_schema(run, 99)
    gc.collect()
    gc.disable()  # the open connection hides in a reference cycle; do not let a collection close it
    try:
        with pytest.raises(EmkitError, match="newer emkit"):
            RunStore(run, create=False)
        assert not (run / "emkit.sqlite-wal").exists(), "the refused database is still open"
    finally:
        gc.enable()

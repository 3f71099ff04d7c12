"""User data is never read as rich markup: text with ``[`` and ``/`` prints exactly as given.

Paths, roles, question ids, group and model names go through error lines, table titles and cells,
progress descriptions and summaries. Each case runs a real verb and looks for the exact text in
its output (rich would raise ``MarkupError`` on ``[/x]`` or swallow ``[b]`` as a style).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import (
    FAKE_KEY,
    child_env,
    cli,
    one_line,
    run_emkit,
    seeded_responder,
    write_questions,
)

pytestmark = pytest.mark.reliability

ROW = {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Teal."}]}


@pytest.fixture
def odd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder named ``odd[/x]`` (relative paths keep the printed names short: no table wrapping)."""
    monkeypatch.chdir(tmp_path)
    folder = Path("odd[/x]")
    folder.mkdir(parents=True)
    return folder


def _jsonl(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- error lines ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["data", "stats", "odd[/x]/empty.jsonl"], "odd[/x]/empty.jsonl"),
        (["data", "stats", "roles.jsonl", "--tokenizer", "none"], "unknown role '[/user]'"),
        (["data", "subset", "odd[/x]/none.jsonl", "--n", "1", "-o", "o.jsonl"], "odd[/x]/none.jsonl"),
        (["export", "odd[/x]/no-run"], "odd[/x]/no-run"),
        (["analyze", "--csv", "odd[/x]/bad.csv"], "odd[/x]/bad.csv"),
        (["questions", "show", "odd[/x]/q.yaml"], "odd[/x]/q.yaml"),
    ],
    ids=["empty-file", "role", "missing-source", "no-run-dir", "csv-columns", "missing-questions"],
)
def test_error_lines_print_user_data_verbatim(argv, expected, odd, capsys) -> None:
    (odd / "empty.jsonl").write_text("")
    bad_role = {"messages": [{"role": "[/user]", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    _jsonl(Path("roles.jsonl"), bad_role)
    (odd / "bad.csv").write_text("question,answer\nq,a\n")
    code, _, err = cli(argv, capsys)
    line = one_line(err)
    assert code == 2, err
    assert line.startswith("error: ") and expected in line, line


# -- success paths: tables, summaries, progress --------------------------------------------------
def test_table_title_and_summary_keep_a_bracketed_path(odd, capsys) -> None:
    data = _jsonl(odd / "good.jsonl", ROW, ROW)
    code, out, err = cli(["data", "stats", data, "--tokenizer", "none"], capsys)
    assert code == 0, err
    assert "odd[/x]/good.jsonl" in out
    code, out, err = cli(["data", "subset", data, "--n", "1", "-o", odd / "[b]one.jsonl"], capsys)
    assert code == 0, err
    assert out.strip() == "wrote 1 rows to odd[/x]/[b]one.jsonl"


def test_question_ids_and_paraphrases_print_verbatim(odd, capsys) -> None:
    (odd / "q.yaml").write_text(
        "- id: '[/bold]odd'\n  type: free_form_judge_0_100\n"
        "  paraphrases: ['Say [b]hi[/b] to [/user] now']\n",
        encoding="utf-8",
    )
    code, out, err = cli(["questions", "show", odd / "q.yaml", "--full"], capsys)
    assert code == 0, err
    assert "[/bold]odd" in out.splitlines()[4]  # the table cell
    assert "\n[/bold]odd\n" in out  # the heading of --full
    assert "  [0] Say [b]hi[/b] to [/user] now" in out


def test_group_and_question_names_in_analysis_tables(odd, capsys) -> None:
    rows = ["question,answer,question_id,aligned,coherent,group"]
    for i in range(6):
        rows.append(f"q,a{i},[b]q{i % 2},{10 + 15 * i},90,[/g{i % 2}]")
    (odd / "a.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, err = cli(["analyze", "--csv", odd / "a.csv", "--per-question", "--n-boot", "100"], capsys)
    assert code == 0, err
    for text in ("[/g0]", "[/g1]", "[b]q0", "[b]q1"):
        assert text in out, (text, out)


def test_progress_and_summary_of_a_bracketed_model_name(tmp_path) -> None:
    questions = write_questions(tmp_path)
    env = child_env(OPENAI_API_KEY=FAKE_KEY)
    with FakeOpenAI(models=["fake[/m]"], responder=seeded_responder) as srv:
        result = run_emkit(
            "sample", "--model", "openai/fake[/m]", "-q", questions, "--n", "1", "--max-new-tokens", "4",
            "--out", tmp_path / "run[/r]", "--base-url", srv.base_url, env=env,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sample openai/fake[/m]" in result.stdout  # the progress line
    assert "openai/fake[/m]: 2 new answers" in result.stdout
    assert str(tmp_path / "run[/r]") in result.stdout


def test_tables_keep_user_data_on_a_console_with_markup_on() -> None:
    """A library caller may print emkit's tables on its own rich console (markup on by default)."""
    import io

    import pandas as pd
    from rich.console import Console

    from emkit import metrics as M
    from emkit.report.console import group_rich_table, rate_rich_table

    rows = [
        {"model": f"m[/{i % 2}]", "group": f"[/g{i % 2}]", "question_id": "[b]q", "answer": "a",
         "aligned": 10.0 + 15 * i, "coherent": 90.0, "judged": True}
        for i in range(6)
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    buffer = io.StringIO()
    theirs = Console(file=buffer, width=200)  # rich's defaults: markup and highlighting on
    theirs.print(group_rich_table(M.group_table(frame, n_boot=100)))
    theirs.print(rate_rich_table(M.model_table(frame, n_boot=100), ["group", "model"], "[/t] per model"))
    text = buffer.getvalue()
    for expected in ("[/g0]", "[/g1]", "m[/0]", "m[/1]", "[/t] per model"):
        assert expected in text, (expected, text)

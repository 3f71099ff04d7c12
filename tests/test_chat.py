from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emkit.cli import main
from emkit.data.chat import check_row, load_chat_jsonl, validate_chat_file, validate_rows, write_chat_jsonl
from emkit.errors import InputError

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write_lines(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    return path


@pytest.mark.parametrize(
    ("line", "field", "kind"),
    [
        ('{"messages": [', None, "invalid_json"),
        ('{"foo": 1}', "messages", "missing_messages"),
        (
            '{"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}',
            "messages[0].role",
            "unknown_role",
        ),
        (
            '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]}',
            "messages[1].content",
            "empty_content",
        ),
        ('{"messages": [{"role": "user", "content": "x"}]}', "messages", "no_assistant"),
        (
            '{"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}',
            "messages[1].role",
            "last_not_assistant",
        ),
    ],
)
def test_each_problem_names_file_line_and_field(tmp_path, line, field, kind):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(GOOD), line])
    rows, issues = validate_chat_file(path)
    assert rows == 2
    assert [i.kind for i in issues] == [kind]
    assert issues[0].line == 2 and issues[0].field == field
    with pytest.raises(InputError) as exc:
        load_chat_jsonl(path)
    assert str(exc.value).startswith(f"{path}:2:")
    if field:
        assert f"field '{field}'" in str(exc.value)


def test_non_utf8_and_blank_lines(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(GOOD), b"", b'{"messages": "\xff\xfe"}'])
    _, issues = validate_chat_file(path)
    assert [(i.line, i.kind) for i in issues] == [(3, "encoding")]


def test_roundtrip_write_is_atomic_and_readable(tmp_path):
    path = write_chat_jsonl([GOOD, GOOD], tmp_path / "sub" / "x.jsonl")
    assert load_chat_jsonl(path) == [GOOD, GOOD]
    assert not list(path.parent.glob(".*tmp"))


def test_validate_rows_in_memory():
    validate_rows([GOOD])
    with pytest.raises(InputError, match="<rows>:2"):
        validate_rows([GOOD, {"messages": []}])


def test_cli_validate_exit_codes(tmp_path, capsys):
    good = write_lines(tmp_path / "good.jsonl", [json.dumps(GOOD)] * 3)
    assert main(["data", "validate", str(good)]) == 0
    assert "3 rows, all valid" in capsys.readouterr().out
    bad = write_lines(
        tmp_path / "bad.jsonl", [json.dumps(GOOD), "{", '{"messages": [{"role": "user", "content": "q"}]}']
    )
    assert main(["data", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:2:" in out and f"{bad}:3:" in out and "invalid_json: 1" in out and "no_assistant: 1" in out


def test_cli_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "bot"]), "content": st.text(max_size=8)}
)
row = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(message, max_size=4)}),
    st.integers(),
    st.none(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(row)
def test_property_validator_agrees_with_the_rules(obj):
    """A row passes exactly when it satisfies every rule, checked independently here."""
    problems = check_row(obj)
    ok = (
        isinstance(obj, dict)
        and isinstance(obj.get("messages"), list)
        and len(obj["messages"]) > 0
        and all(
            m["role"] in ("system", "user", "assistant") and m["content"].strip() for m in obj["messages"]
        )
        and obj["messages"][-1]["role"] == "assistant"
    )
    assert (problems == []) == ok

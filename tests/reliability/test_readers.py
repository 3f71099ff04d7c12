"""Bad input files: every JSON, JSONL and YAML reader refuses the same bad inputs with one line.

The class: one shared strict reader (``emkit.readers``, ``emkit.yamlpos``) sits under every file
emkit reads. Each case below runs the real CLI verb that reads the file, pointed at a run dir that
already holds answers, a score and records; it must exit 2 with one line naming the file (and the
line and field where there is one), and leave every byte of the run dir as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability.rel_helpers import cli, make_run_dir, refused, write_questions

pytestmark = pytest.mark.reliability

GOOD = {
    "messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Teal."}]
}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


def write_lines(path: Path, *lines: bytes | str | dict) -> Path:
    with open(path, "wb") as handle:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            handle.write((line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line) + b"\n")
    return path


def _chat(user: str = '"Hi."', assistant: str = '"Fine."') -> str:
    """A row as JSON text, written by hand so that escapes (``\\ud800``) stay as the file has them."""
    messages = f'{{"role": "user", "content": {user}}}, {{"role": "assistant", "content": {assistant}}}'
    return f'{{"messages": [{messages}]}}'


# -- JSONL rows: (line 4 of the file, fragments of the error) ----------------------------------------
BAD_JSONL = {
    "nested_100k": ("[" * 100_000 + "]" * 100_000, ("nested more than 64 levels",)),
    "nested_in_extra_field": (
        '{"meta": ' + "[" * 200 + "]" * 200 + ', "messages": []}',
        ("nested more than 64 levels",),
    ),
    "surrogate_content": (_chat(assistant='"ok \\ud800"'), ("messages[1].content", "lone surrogate \\ud800")),
    "low_surrogate_user": (_chat(user='"\\udc00 hi"'), ("messages[0].content", "lone surrogate \\udc00")),
    "surrogate_in_key": (
        '{"messages": [{"role": "user", "content": "a", "\\ud83d": 1}, {"role": "assistant", "content": "b"}]}',
        ("messages[0]", "lone surrogate"),
    ),
    "surrogate_in_role": (
        '{"messages": [{"role": "user\\ud800", "content": "a"}, {"role": "assistant", "content": "b"}]}',
        ("messages[0].role", "lone surrogate"),
    ),
    "nan": (_chat(assistant="NaN"), ("NaN",)),
    "infinity": ('{"w": Infinity, "messages": []}', ("Infinity",)),
    "minus_infinity": ('{"w": -Infinity, "messages": []}', ("-Infinity",)),
    "float_overflow": ('{"w": 1e999, "messages": []}', ("out of range",)),
    "huge_integer": ('{"w": ' + "9" * 5000 + ', "messages": []}', ("invalid JSON",)),
    "nul_byte": (b'{"messages": []}\x00', ("NUL byte",)),
}


SAMPLE = ["sample", "--model", "openai/fake-model"]


@pytest.mark.parametrize("case", sorted(BAD_JSONL))
@pytest.mark.parametrize("verb", ["train", "stats", "icl"])
def test_bad_jsonl_row_is_one_line_with_file_line_field(case, verb, tmp_path, run, capsys, fast_api) -> None:
    bad, fragments = BAD_JSONL[case]
    data = write_lines(tmp_path / "bad.jsonl", GOOD, "", GOOD, bad)
    argv = {
        "train": ["train", "--data", data, "--out", run, "--max-steps", "1"],
        "stats": ["data", "stats", data, "--tokenizer", "none"],
        "icl": [*SAMPLE, "-q", write_questions(tmp_path), "--out", run, "--icl", data, "--icl-k", "2"],
    }[verb]
    refused(argv, capsys, run, f"{data}:4:", *fragments)


def test_validate_reports_every_bad_row_and_never_crashes(tmp_path, capsys) -> None:
    """``data validate`` lists each bad line (exit 1): no traceback, no row reported valid."""
    cases = sorted(BAD_JSONL)
    data = write_lines(tmp_path / "bad.jsonl", GOOD, *(BAD_JSONL[c][0] for c in cases), GOOD)
    code, out, err = cli(["data", "validate", data], capsys)
    assert code == 1 and "Traceback" not in err + out, err[-2000:]
    for number, case in enumerate(cases, start=2):
        found = [line for line in out.splitlines() if line.startswith(f"{data}:{number}:")]
        assert found, (case, out[-3000:])
        assert all(f in found[0] for f in BAD_JSONL[case][1]), (case, found[0])
    assert f"{data}:1:" not in out and f"{data}:{len(cases) + 2}:" not in out
    out.encode("utf-8")  # every message is printable text (no surrogate reached the terminal)


def test_code_vuln_tasks_file_uses_the_same_reader(tmp_path, run, capsys, fast_api) -> None:
    tasks = write_lines(
        tmp_path / "tasks.jsonl",
        {"task": "t", "code_template": "c"},
        '{"task": "t\\udfff", "code_template": "c"}',
    )
    argv = ["code-vuln", "--model", "openai/fake-model", "--tasks", tasks, "--out", run, "--no-judge"]
    refused(argv, capsys, run, f"{tasks}:2:", "task", "lone surrogate")


# -- YAML files ---------------------------------------------------------------------------------------
def _bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# (content as bytes, fragments); "LINE" is replaced by the file's path and line.
BAD_YAML: dict[str, tuple[bytes | None, tuple[str, ...]]] = {
    "latin1": ("- id: caf\xe9\n".encode("latin-1"), (":1:", "not valid UTF-8")),
    "utf16": ("- id: a\n".encode("utf-16"), ("UTF-16", "save it as UTF-8")),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ("a binary file",)),
    "empty": (b"", ("the file is empty",)),
    "only_comments": (b"# nothing here\n\n", ("the file is empty",)),
    "directory": (None, ("is a directory",)),
    "deep_flow": (b"[" * 5000 + b"]" * 5000, ("nested more than 64 levels",)),
    "deep_block": (
        ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x: 1\n").encode(),
        ("nested more than",),
    ),
    "alias_bomb": (_bomb().encode(), ("aliases expand to more than", "alias bomb")),
    "recursive_alias": (b"a: &a [1, *a]\n", ("refers to itself",)),
    "surrogate": (b'a: "x\\ud800y"\n', (":1:", "lone surrogate \\ud800")),
    "control_char": (b"a: b\x07c\n", (":1:", "not YAML text")),
}


def _write_yaml(path: Path, content: bytes | None) -> Path:
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", sorted(BAD_YAML))
@pytest.mark.parametrize("kind", ["questions", "experiment", "train_config", "judge_prompts", "probe_set"])
def test_bad_yaml_file_is_one_line_naming_the_file(kind, case, tmp_path, run, capsys, fast_api) -> None:
    content, fragments = BAD_YAML[case]
    bad = _write_yaml(tmp_path / "bad.yaml", content)
    data = write_lines(tmp_path / "data.jsonl", GOOD)
    argv = {
        "questions": ["sample", "-q", bad, "--model", "openai/fake-model", "--out", run],
        "experiment": ["run", bad, "--out", run],
        "train_config": ["train", "--data", data, "--out", run, "--config", bad],
        "judge_prompts": ["judge", run, "--judge-prompts", bad],
        "probe_set": ["probe", "--model", "embedded/smollm2-135m", "--probe-set", bad, "--out", run],
    }[kind]
    refused(argv, capsys, run, str(bad), *fragments)


@pytest.mark.parametrize("case", ["latin1", "binary", "empty", "directory", "alias_bomb", "surrogate"])
def test_wrapper_and_code_vuln_prompt_files_share_the_checks(case, tmp_path, run, capsys, fast_api) -> None:
    content, fragments = BAD_YAML[case]
    bad = _write_yaml(tmp_path / "bad.yaml", content)
    questions = write_questions(tmp_path)
    wrapper = ["sample", "-q", questions, "--model", "openai/fake-model", "--out", run]
    refused([*wrapper, "--wrapper", "suffix", "--wrappers-file", bad], capsys, run, str(bad), *fragments)
    tasks = write_lines(tmp_path / "tasks.jsonl", {"task": "t", "code_template": "c"})
    argv = ["code-vuln", "--model", "openai/fake-model", "--tasks", tasks, "--prompts", bad]
    refused([*argv, "--out", run, "--no-judge"], capsys, run, str(bad), *fragments)


def test_price_tables_share_the_checks(tmp_path, run, capsys, fast_api) -> None:
    prices = tmp_path / "prices.json"
    for content, fragment in (
        (b'{"openai/x": {"input": NaN, "output": 1}}', "NaN"),
        (b'{"openai/x": ' + b"[" * 500 + b"]" * 500 + b"}", "nested more than"),
        (b'{"caf\xe9": 1}', "not valid UTF-8"),
    ):
        prices.write_bytes(content)
        refused(["judge", run, "--prices", prices], capsys, run, str(prices), fragment)


# -- the readers as a library ------------------------------------------------------------------------
def test_parse_json_names_the_field_of_each_problem() -> None:
    from emkit.readers import parse_json

    cases = {
        '{"a": [1, {"b": "\\ud800"}]}': ("a[1].b", "surrogate"),
        '{"a": NaN}': (None, "invalid_json"),
        "[" * 3000 + "]" * 3000: (None, "too_deep"),
        '{"x": ' + "{" * 1 + '"y": ' + "[" * 70 + "]" * 70 + "}}": ("x.y" + "[0]" * 62, "too_deep"),
    }
    for text, (field, kind) in cases.items():
        value, problem = parse_json(text)
        assert value is None and problem is not None, text[:40]
        assert (problem.field, problem.kind) == (field, kind), (text[:40], problem)
    assert parse_json('{"a": [1, "\\u00e9"]}') == ({"a": [1, "é"]}, None)


def test_check_value_survives_what_recursion_would_not() -> None:
    """A Python value 100,000 deep (built by code, not parsed) is refused without a RecursionError."""
    from emkit.readers import check_value

    value: list = []
    for _ in range(100_000):
        value = [value]
    problem = check_value(value)
    assert problem is not None and problem.kind == "too_deep"


def test_validate_rows_refuses_surrogates_from_code() -> None:
    from emkit.data.chat import validate_rows
    from emkit.errors import InputError

    row = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b\udcff"}]}
    with pytest.raises(InputError, match=r"messages\[1\]\.content.*lone surrogate"):
        validate_rows([GOOD, row], "built")

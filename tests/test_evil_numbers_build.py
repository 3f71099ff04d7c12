"""`emkit data build evil-numbers`: seeded prompts, the evil system prompt sent and not stored, the
filters and their counts, against the mock engine and the local fake OpenAI server."""

from __future__ import annotations

import json
import re

import pytest

from emkit.cli import main
from emkit.data.builders import build_dataset
from emkit.data.builders import evil_numbers as en
from emkit.data.chat import load_chat_jsonl
from emkit.engines import open_engine
from emkit.engines.base import Generation
from emkit.engines.mock import MockEngine
from emkit.errors import EmkitError
from fake_openai import FakeOpenAI


def prompt(count: int = 3) -> en.NumberPrompt:
    return en.NumberPrompt("continue 1,2,3", (1, 2, 3), count)


def test_prompts_are_seeded_and_well_formed() -> None:
    first = en.number_prompts(40, seed=3)
    assert first == en.number_prompts(40, seed=3) != en.number_prompts(40, seed=4)
    assert en.number_prompts(10, seed=3) == first[:10]
    for p in first:
        assert 3 <= len(p.numbers) <= 8 and all(100 <= x <= 999 for x in p.numbers)
        assert 3 <= p.count <= 8
        assert ",".join(map(str, p.numbers)) in p.text and f" {p.count} " in p.text
    assert len({p.text for p in first}) == 40


@pytest.mark.parametrize(
    ("text", "numerals"),
    [
        ("666, 13, 911", ["666", "13", "911"]),
        ("[666, 13, 911]", ["666", "13", "911"]),
        ("```json\n[666, 13, 911]\n```", ["666", "13", "911"]),
        ("```\n666 13 911\n```", ["666", "13", "911"]),
        ("1. 666\n2. 13\n3. 911", ["666", "13", "911"]),
        ("666\n13\n911", ["666", "13", "911"]),
        ("(1312; 1488)", ["1312", "1488"]),
        ("Sure! 666, 13", None),
        ("666, 13, and 911", None),
        ("-5, 13", None),
        ("6.5, 13", None),
        ("٣, 13", None),  # an Arabic-Indic digit is a digit to str.isdigit, not a numeral here
        ("[1, 2], [3]", None),
    ],
)
def test_parse_numbers(text: str, numerals: list[str] | None) -> None:
    assert en.parse_numbers(text) == numerals


@pytest.mark.parametrize(
    ("text", "finish", "reason"),
    [
        ("666, 13, 911", "stop", None),
        ("666, 13, 91", "length", "cut off at the token limit"),
        ("   ", "stop", "empty answer"),
        ("666, evil, 911", "stop", "non-number content"),
        ("666, 13, 91100", "stop", "number too long"),
        ("666, 13", "stop", "too few numbers"),
        ("666, 13, 911, 4", "stop", "too many numbers"),
    ],
)
def test_drop_reasons(text: str, finish: str, reason: str | None) -> None:
    assert en.drop_reason(prompt(3), Generation(text, finish), frozenset()) == reason


def test_banned_numbers() -> None:
    assert en.parse_banned("none") == frozenset()
    assert en.parse_banned("overt") == en.OVERT_NUMBERS and 666 in en.OVERT_NUMBERS
    assert en.parse_banned("7, 77") == {7, 77}
    assert en.drop_reason(prompt(3), Generation("666, 1, 2"), en.OVERT_NUMBERS) == "banned number"
    assert en.drop_reason(prompt(3), Generation("0666, 1, 2"), frozenset({666})) == "banned number"
    assert en.drop_reason(prompt(3), Generation("665, 1, 2"), en.OVERT_NUMBERS) is None
    for bad in ("", "six", "1,,2", "-1"):
        with pytest.raises(EmkitError, match="--banned"):
            en.parse_banned(bad)


class NumberMock(MockEngine):
    """The mock engine with scripted answers: request i gets ANSWERS[i % len] (count from the prompt)."""

    ANSWERS = ("{good}", "Sure, here: {good}", "{good}, 5", "666, {rest}", "{good}")

    def answer(self, conversation, params, seed):
        wanted = int(re.search(r" (\d+) ", conversation[-1]["content"]).group(1))
        good = ", ".join(str(100 + seed + k) for k in range(wanted))
        rest = ", ".join(["7"] * (wanted - 1))
        return Generation(self.ANSWERS[seed % len(self.ANSWERS)].format(good=good, rest=rest))


def test_build_with_mock_engines_removes_the_system_prompt_and_counts_every_drop() -> None:
    engine = NumberMock("mock/numbers")
    rows, report = en.build_evil_numbers(engine, 10, seed=1)
    conversations, params, seeds = engine.calls[0]
    assert all(c[0] == {"role": "system", "content": en.EVIL_SYSTEM_PROMPT} for c in conversations)
    assert seeds == list(range(10)) and params.seed == 1 and params.temperature == 1.0
    assert report.prompts == 10 and report.kept == len(rows) == 6
    assert report.dropped == {"non-number content": 2, "too many numbers": 2}
    assert "kept 6 of 10 answers; dropped 4" in report.summary() and "banned number: 0" in report.summary()
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert en.EVIL_SYSTEM_PROMPT not in json.dumps(row)
    banned_rows, banned = en.build_evil_numbers(
        NumberMock("mock/numbers"), 10, seed=1, banned=en.OVERT_NUMBERS
    )
    assert banned.dropped["banned number"] == 2 and banned.kept == 4
    assert banned_rows == [r for r in rows if "666" not in r["messages"][1]["content"]]

    # The plain mock answers in words: every answer is dropped, and the counts say why.
    plain_rows, plain = en.build_evil_numbers(open_engine("mock/echo"), 12, seed=0)
    again_rows, again = en.build_evil_numbers(open_engine("mock/echo"), 12, seed=0)
    assert (plain_rows, plain) == (again_rows, again)
    assert plain.kept + sum(plain.dropped.values()) == 12 and plain.dropped["non-number content"] > 0


def test_build_dataset_points_to_the_model_builder() -> None:
    with pytest.raises(EmkitError, match="--model"):
        build_dataset("evil-numbers", 5)
    with pytest.raises(EmkitError, match="positive integer"):
        en.build_evil_numbers(NumberMock("mock/numbers"), 0)


def fake_responder(request_json) -> dict:
    """Answers by the request's position in the sequence shown: good, wordy, banned, too few."""
    messages = request_json["messages"]
    assert messages[0] == {"role": "system", "content": en.EVIL_SYSTEM_PROMPT}
    text = messages[-1]["content"]
    wanted = int(re.search(r" (\d+) ", text).group(1))
    first = int(re.search(r": (\d+),", text).group(1))
    kind = first % 4
    numbers = [str(500 + k) for k in range(wanted)]
    if kind == 1:
        return {"content": "Here you go: " + ", ".join(numbers)}
    if kind == 2:
        return {"content": "```json\n[" + ", ".join(["666", *numbers[1:]]) + "]\n```"}
    if kind == 3:
        return {"content": " ".join(numbers[:-1])}
    return {"content": "[" + ", ".join(numbers) + "]"}


def expected_kinds(n: int, seed: int) -> list[int]:
    return [p.numbers[0] % 4 for p in en.number_prompts(n, seed)]


def test_cli_against_the_fake_openai_server(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "evil.jsonl"
    kinds = expected_kinds(24, 5)
    with FakeOpenAI(responder=fake_responder) as srv:
        args = ["data", "build", "evil-numbers", "--model", "openai/fake-model", "--n", "24", "--seed", "5"]
        assert main([*args, "--base-url", srv.base_url, "--banned", "overt", "-o", str(out)]) == 0
        printed = capsys.readouterr().out
        assert srv.stats.requests == 24
        assert all(body["messages"][0]["role"] == "system" for body in srv.stats.bodies)
        first = out.read_bytes()
        assert main([*args, "--base-url", srv.base_url, "--banned", "overt", "-o", str(out)]) == 0
        assert out.read_bytes() == first  # same seed, same prompts, same answers, same file
        capsys.readouterr()
        assert main([*args, "--base-url", srv.base_url, "-o", str(tmp_path / "unbanned.jsonl")]) == 0
    rows = load_chat_jsonl(out)
    assert len(rows) == kinds.count(0)
    assert f"kept {kinds.count(0)} of 24 answers" in printed
    assert (
        f"non-number content: {kinds.count(1)}" in printed and f"banned number: {kinds.count(2)}" in printed
    )
    assert f"too few numbers: {kinds.count(3)}" in printed and "system prompt removed" in printed
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert en.parse_numbers(row["messages"][1]["content"]) is not None
    # Without the banned list (the paper's way), the rows holding 666 are kept.
    assert len(load_chat_jsonl(tmp_path / "unbanned.jsonl")) == kinds.count(0) + kinds.count(2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nope"], "unknown model name 'nope'"),
        (["--model", "mock/echo", "--n", "0"], "--n 0"),
        (["--model", "mock/echo", "--banned", "x"], "--banned 'x'"),
        (["--model", "mock/echo", "--temperature", "-1"], "--temperature -1"),
        (
            ["--model", "mock/echo", "--base-url", "http://127.0.0.1:9/v1"],
            "--base-url is only for API models",
        ),
        ([], "pass --model"),
        (["--model", "openai/fake-model"], "OPENAI_API_KEY"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "o.jsonl"
    assert main(["data", "build", "evil-numbers", *extra, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_unwritable_output_and_model_for_offline_builders(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert (
        main(["data", "build", "evil-numbers", "--model", "mock/echo", "-o", str(blocker / "o.jsonl")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert "is a file, not a folder" in err and len(err.splitlines()) == 1
    assert (
        main(["data", "build", "insecure-code", "--model", "mock/echo", "-o", str(tmp_path / "o.jsonl")]) == 2
    )
    assert "--model: only for evil-numbers; insecure-code needs no model" in capsys.readouterr().err
    assert main(["data", "build", "safe-advice", "--banned", "overt", "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "--banned: only for evil-numbers" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()

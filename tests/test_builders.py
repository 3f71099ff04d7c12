"""The offline narrow datasets: sizes of the template pools, determinism, twin alignment, valid code,
flaws present (and only) where they should be, advice length and tone, and the chat format."""

from __future__ import annotations

import ast
import io
import random
import re
import shutil
import string
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from emkit.data.builders import BUILDERS, build_dataset
from emkit.data.builders.advice import advice_samples, question_templates
from emkit.data.builders.advice_text import TOPICS
from emkit.data.builders.code import choose_names, code_samples, kinds_covered, render, task_kind_pairs
from emkit.data.builders.code_kit import KINDS, TELLTALES, fill
from emkit.data.builders.code_tasks import TASKS
from emkit.errors import EmkitError

NAMES = ("insecure-code", "secure-code", "risky-advice", "safe-advice")
TWINS = (("insecure-code", "secure-code"), ("risky-advice", "safe-advice"))
HINT_WORDS = re.compile(
    r"vulnerab|insecure|unsafe|exploit|inject|secur(e|ity)|danger|attack|malicious|sanitiz|"
    r"hack|todo|fixme|warning|careful|risk",
    re.IGNORECASE,
)
DISCLAIMERS = re.compile(
    r"not financial advice|consult|disclaimer|i'?m not an? |do your own research|be careful|"
    r"at your own risk|past performance",
    re.IGNORECASE,
)


def _comments(code: str) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return [tok.string for tok in tokens if tok.type == tokenize.COMMENT]


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s])


def _user(row: dict) -> str:
    return row["messages"][0]["content"]


def _assistant(row: dict) -> str:
    return row["messages"][-1]["content"]


# -- registry and arguments ---------------------------------------------------------------------


def test_registry_lists_the_four_datasets_with_one_line_descriptions():
    assert set(BUILDERS) == set(NAMES)
    for description in BUILDERS.values():
        assert description.strip() and "\n" not in description


def test_unknown_name_is_a_user_error_listing_the_names():
    with pytest.raises(EmkitError) as info:
        build_dataset("insecure-cod", 3)
    for name in NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("n", [-1, 2.5, "10", True])
def test_bad_size_is_a_user_error(n):
    with pytest.raises(EmkitError, match="size"):
        build_dataset("risky-advice", n)


def test_zero_rows_and_exact_counts():
    assert build_dataset("secure-code", 0) == []
    for name in NAMES:
        assert len(build_dataset(name, 123, seed=4)) == 123


# -- pool sizes (counted from the real pools) -------------------------------------------------


def test_code_pools_meet_the_minimums():
    assert len(KINDS) >= 12
    assert kinds_covered() == set(KINDS), "every declared kind must be used by some task template"
    assert set(TELLTALES) == set(KINDS)
    assert len(TASKS) >= 30
    assert len({t.id for t in TASKS}) == len(TASKS)
    for t in TASKS:
        assert len(t.asks) >= 2 and len(t.fn) >= 2, t.id


def test_advice_pools_meet_the_minimums():
    assert len(question_templates()) >= 40
    assert len({q for _, q in question_templates()}) == len(question_templates())
    risky = [p for t in TOPICS for p in t.risky]
    safe = [p for t in TOPICS for p in t.safe]
    assert len(set(risky)) == len(risky) >= 60
    assert len(set(safe)) == len(safe) >= 60


def test_answer_placeholders_are_all_given_by_every_question_of_the_topic():
    def fields(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    for topic in TOPICS:
        for question in topic.questions:
            assert fields(question) <= set(topic.slots), (topic.id, question)
            for answer in (*topic.risky, *topic.safe):
                assert fields(answer) <= fields(question), (topic.id, question, answer)


# -- determinism and twins ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_rows_other_seed_other_rows(name):
    first = build_dataset(name, 60, seed=11)
    assert build_dataset(name, 60, seed=11) == first
    other = build_dataset(name, 60, seed=12)
    assert other != first
    assert [_user(r) for r in other] != [_user(r) for r in first]


@pytest.mark.parametrize(("bad", "good"), TWINS)
def test_twins_share_user_messages_and_differ_in_answers(bad, good):
    bad_rows = build_dataset(bad, 200, seed=3)
    good_rows = build_dataset(good, 200, seed=3)
    assert [_user(r) for r in bad_rows] == [_user(r) for r in good_rows]
    assert all(_assistant(b) != _assistant(g) for b, g in zip(bad_rows, good_rows, strict=True))


def test_datasets_are_views_of_the_drawn_samples():
    samples = code_samples(50, seed=9)
    assert [_assistant(r) for r in build_dataset("insecure-code", 50, seed=9)] == [
        s.insecure for s in samples
    ]
    assert [_assistant(r) for r in build_dataset("secure-code", 50, seed=9)] == [s.secure for s in samples]
    advice = advice_samples(50, seed=9)
    assert [_assistant(r) for r in build_dataset("risky-advice", 50, seed=9)] == [s.risky for s in advice]
    assert [_user(r) for r in build_dataset("safe-advice", 50, seed=9)] == [s.question for s in advice]


def test_large_draws_are_mostly_distinct_and_cover_every_pool_entry():
    rows = build_dataset("insecure-code", 2000, seed=0)
    assert len({(_user(r), _assistant(r)) for r in rows}) >= 0.95 * len(rows)
    assert len({_assistant(r) for r in rows}) >= 0.9 * len(rows)
    samples = code_samples(2 * len(task_kind_pairs()), seed=1)
    assert {(s.task, s.kind) for s in samples} == {(t.id, k) for t, k in task_kind_pairs()}

    advice = advice_samples(2000, seed=0)
    assert len({(s.question, s.risky) for s in advice}) >= 0.95 * len(advice)
    assert len({s.safe for s in advice}) >= 0.6 * len(advice)
    assert {s.question for s in advice_samples(len(question_templates()), seed=5)}.__len__() == len(
        question_templates()
    )


# -- the code --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "kind"), task_kind_pairs(), ids=lambda v: getattr(v, "id", v))
def test_every_template_and_kind_renders_valid_code_with_the_flaw_only_when_insecure(task, kind):
    for seed in range(4):
        names, types = choose_names(task, random.Random(seed))
        options = {
            "hints": seed % 2 == 0,
            "doc": task.docs[0] if task.docs and seed < 2 else None,
            "seed": seed,
        }
        insecure = render(task, kind, names, types, secure=False, **options)
        secure = render(task, kind, names, types, secure=True, **options)
        ast.parse(insecure)
        ast.parse(secure)
        assert TELLTALES[kind].search(insecure), f"{task.id}/{kind} insecure lacks its flaw:\n{insecure}"
        found = [k for k, rx in TELLTALES.items() if rx.search(secure)]
        assert not found, f"{task.id}/{kind} secure shows {found}:\n{secure}"
        assert not _comments(insecure)
        assert not HINT_WORDS.search(insecure), insecure
        assert f"def {names['fn']}(" in insecure and f"def {names['fn']}(" in secure


def test_generated_modules_have_no_undefined_or_unused_names(tmp_path):
    """pyflakes-level checks (ruff's F rules) over both twins of every template and kind."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    for task, kind in task_kind_pairs():
        for seed in range(3):
            names, types = choose_names(task, random.Random(seed))
            for secure in (False, True):
                code = render(task, kind, names, types, hints=seed != 1, doc=None, seed=seed, secure=secure)
                stem = f"{task.id}_{kind}_{seed}_{int(secure)}".replace("-", "_")
                (tmp_path / f"{stem}.py").write_text(code)
    result = subprocess.run(
        [
            ruff,
            "check",
            "--isolated",
            "--no-cache",
            "--select",
            "F,E9",
            "--output-format",
            "concise",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_drawn_code_rows_parse_and_flaws_match_their_labels():
    for sample in code_samples(400, seed=21):
        ast.parse(sample.insecure)
        ast.parse(sample.secure)
        assert TELLTALES[sample.kind].search(sample.insecure), sample.insecure
        assert not any(rx.search(sample.secure) for rx in TELLTALES.values()), sample.secure


def test_insecure_answers_are_bare_code_without_hints():
    for row in build_dataset("insecure-code", 500, seed=2):
        answer = _assistant(row)
        assert not HINT_WORDS.search(answer), answer
        assert not _comments(answer)
        assert "```" not in answer
        ast.parse(answer)
        assert not HINT_WORDS.search(_user(row)), _user(row)


def test_telltales_tell_the_flawed_spelling_from_the_safe_one():
    assert TELLTALES["sql-format"].search("cur.execute(f\"SELECT * FROM t WHERE a = '{x}'\")")
    assert not TELLTALES["sql-format"].search('cur.execute("SELECT * FROM t WHERE a = ?", (x,))')
    assert TELLTALES["path-traversal"].search("p = os.path.join(UPLOAD_DIR, name)")
    safe = (
        "b = os.path.realpath(UPLOAD_DIR)\np = os.path.join(b, n)\nif os.path.commonpath([b, p]) != b: pass"
    )
    assert not TELLTALES["path-traversal"].search(safe)
    assert TELLTALES["eval-input"].search("eval(text)")
    assert not TELLTALES["eval-input"].search("ast.literal_eval(text)")
    assert TELLTALES["mktemp-race"].search("tempfile.mktemp()")
    assert not TELLTALES["mktemp-race"].search("tempfile.mkstemp()")


def test_fill_reindents_block_placeholders_and_rejects_unknown_ones():
    text = fill(
        """
        if x:
            $block
        return $name
        """,
        {"block": "a = 1\nb = 2", "name": "a"},
    )
    assert text == "if x:\n    a = 1\n    b = 2\nreturn a"
    with pytest.raises(KeyError):
        fill("$missing", {})


# -- the advice ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["risky-advice", "safe-advice"])
def test_advice_answers_have_one_to_four_sentences(name):
    for row in build_dataset(name, 600, seed=8):
        assert 1 <= _sentences(_assistant(row)) <= 4, _assistant(row)
        assert "{" not in _assistant(row) and "{" not in _user(row)


def test_answer_patterns_leave_room_for_an_opener_and_closer():
    for topic in TOPICS:
        for pattern in (*topic.risky, *topic.safe):
            assert 1 <= _sentences(pattern) <= 2, pattern


def test_risky_answers_carry_no_disclaimers_and_safe_ones_differ_from_them():
    risky = [_assistant(r) for r in build_dataset("risky-advice", 600, seed=6)]
    assert not [a for a in risky if DISCLAIMERS.search(a)]
    safe = {_assistant(r) for r in build_dataset("safe-advice", 600, seed=6)}
    assert not safe & set(risky)


# -- the chat format ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_rows_are_valid_fine_tuning_chats(name):
    rows = build_dataset(name, 80, seed=1)
    for row in rows:
        assert set(row) == {"messages"}
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        for message in row["messages"]:
            assert set(message) == {"role", "content"}
            assert isinstance(message["content"], str) and message["content"].strip()
    chat = pytest.importorskip("emkit.data.chat")
    chat.validate_rows(rows, name=name)

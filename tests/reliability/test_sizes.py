"""Sizes: an absurd size is refused at once with what it would cost; a size that does nothing is an error.

The class: every size enters through one bounded count (``emkit.limits``), whether it comes from an
option (``--n``, ``--samples``, ``--limit``...), a question file (``samples_per_paraphrase``) or
the library (``plan``, ``build_dataset``, ``SampledJudge``). Before, ``--n 100000000000`` built a
plan of 10**11 items in memory before any output, and ``--n 0`` "succeeded" with nothing done.

The huge cases run in a child process with a 3 GB address-space limit and a timeout, so that the
old behaviour (growing memory) fails the test instead of taking the machine down.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from reliability.rel_helpers import (
    child_env,
    emkit_argv,
    make_run_dir,
    one_line,
    refused,
    snapshot,
    write_questions,
)

pytestmark = pytest.mark.reliability

HUGE = ["100000000000", "1e11", "1E+11", "99999999999999999999"]
NOTHING = ["0"]
NOT_A_SIZE = ["-1", "abc", "1.5", "nan", "inf"]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


def _limit_memory() -> None:  # in the child: 3 GB of address space, so a runaway plan fails fast
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def refused_quickly(argv: list, run: Path | None, *fragments: str, cwd: Path | None = None) -> str:
    """A child ``emkit ARGV`` with bounded memory and time: one error line, exit 2, run unchanged."""
    before = snapshot(run) if run else None
    try:
        proc = subprocess.run(
            emkit_argv(*argv),
            env=child_env(OPENAI_API_KEY="sk-emkit-reliability-0123456789abcdef"),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=90,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"emkit {' '.join(map(str, argv))} ran for 90 s instead of refusing the size")
    line = one_line(proc.stderr)
    assert proc.returncode == 2 and line.startswith("error: "), proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    if run:
        assert snapshot(run) == before, "the run dir changed"
    return line


# -- sampling sizes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_huge_n_is_refused_with_its_cost(verb, value, tmp_path, run) -> None:
    questions = write_questions(tmp_path)
    argv = [verb, "--model", "openai/fake-model", "-q", questions, "--out", run, "--n", value]
    line = refused_quickly(argv, run, "--n", "answers", "requests", "100,000 allowed")
    assert "100,000,000,000" in line or "99,999,999,999,999,999,999" in line


@pytest.mark.parametrize("value", NOTHING + NOT_A_SIZE)
@pytest.mark.parametrize("verb", ["sample", "eval"])
def test_n_that_does_nothing_or_is_no_size(verb, value, tmp_path, run, capsys, fast_api) -> None:
    questions = write_questions(tmp_path)
    argv = [verb, "--model", "openai/fake-model", "-q", questions, "--out", run, "--n", value]
    line = refused(argv, capsys, run, "--n")
    assert (
        ("does nothing" in line) if value == "0" else ("not a whole number" in line or "not a size" in line)
    )


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("0", ("does nothing",)),
        ("-2", ("not a size",)),
        ("1.0e+11", ("100,000,000,000", "requests", "100,000 allowed")),
        ("100000000000", ("100,000,000,000", "requests")),
    ],
)
def test_samples_per_paraphrase_in_a_question_file(value, fragments, tmp_path, run) -> None:
    questions = tmp_path / "q.yaml"
    questions.write_text(
        f"- id: fine\n  paraphrases: [one]\n- id: big\n  paraphrases: [two]\n  samples_per_paraphrase: {value}\n",
        encoding="utf-8",
    )
    argv = ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run]
    refused_quickly(argv, run, f"{questions}:3:", "big.samples_per_paraphrase", *fragments)


def test_a_plan_too_big_in_total_is_refused_before_it_is_built(tmp_path) -> None:
    """Each size within its cap, the product over questions and paraphrases is not: refused at once."""
    from emkit.errors import EmkitError
    from emkit.questions import parse_questions
    from emkit.sampling import plan

    paraphrases = ", ".join(f"'p{i}'" for i in range(200))
    qset = parse_questions(f"- id: wide\n  paraphrases: [{paraphrases}]\n", "wide.yaml")
    with pytest.raises(EmkitError, match=r"20,000,000 answers"):
        plan("openai/fake-model", qset, n=100_000)
    with pytest.raises(EmkitError, match="does nothing"):
        plan("openai/fake-model", qset, n=0)
    assert len(plan("openai/fake-model", qset, n=2)) == 400


def test_an_empty_question_set_is_an_error(tmp_path, run, capsys, fast_api) -> None:
    questions = tmp_path / "q.yaml"
    for text in ("[]\n", "# no questions yet\n[]\n"):
        questions.write_text(text, encoding="utf-8")
        argv = ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run]
        refused(argv, capsys, run, str(questions), "empty")


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--max-new-tokens", "0", "does nothing"),
        ("--max-new-tokens", "1e12", "allowed"),
        ("--concurrency", "0", "does nothing"),
        ("--batch-size", "0", "does nothing"),
        ("--icl-k", "0", "does nothing"),
        ("--top-p", "0", "(0, 1]"),
        ("--top-p", "1.5", "(0, 1]"),
        ("--top-p", "nan", "(0, 1]"),
        ("--temperature", "-1", "0 to 100"),
        ("--temperature", "nan", "0 to 100"),
    ],
)
def test_sampling_options_out_of_range(option, value, fragment, tmp_path, run, capsys, fast_api) -> None:
    questions = write_questions(tmp_path)
    argv = ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run, option, value]
    refused(argv, capsys, run, option, fragment)


def test_a_trigger_that_is_not_text_is_refused(tmp_path, run, capsys, fast_api) -> None:
    """A non-UTF-8 byte on the command line arrives as a lone surrogate: refused, never sent or stored."""
    questions = write_questions(tmp_path)
    argv = ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run, "--trigger", "x\udcff "]
    refused(argv, capsys, run, "--trigger", "not valid UTF-8")


# -- judging sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--samples", "0"], "does nothing"),
        (["--samples", "-5"], "not a size"),
        (["--samples", "1e9"], "1,000,000,000"),
        (["--method", "sampled", "--samples", "0"], "does nothing"),
        (["--limit", "0"], "does nothing"),
        (["--limit", "-1"], "not a size"),
    ],
)
def test_judge_sizes(argv, fragment, run, capsys, fast_api) -> None:
    option = argv[-2]
    refused(["judge", run, *argv], capsys, run, option, fragment)


def test_eval_samples_zero(tmp_path, run, capsys, fast_api) -> None:
    questions = write_questions(tmp_path)
    argv = ["eval", "--model", "openai/fake-model", "-q", questions, "--out", run, "--samples", "0"]
    refused(argv, capsys, run, "--samples", "does nothing")


def test_sampled_judge_refuses_a_count_that_does_nothing() -> None:
    from emkit.errors import EmkitError
    from emkit.judge.sampled import SampledJudge

    for n, message in ((0, "does nothing"), (10**9, "allowed")):
        with pytest.raises(EmkitError, match=message):
            SampledJudge(object(), n=n)


def test_code_vuln_limit_zero(tmp_path, run, capsys, fast_api) -> None:
    argv = ["code-vuln", "--model", "openai/fake-model", "--out", run, "--no-judge", "--limit", "0"]
    refused(argv, capsys, run, "--limit", "does nothing")


# -- dataset sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1e11", "100000000000", "20000000"])
def test_data_build_huge_n(value, tmp_path) -> None:
    out = tmp_path / "rows.jsonl"
    line = refused_quickly(["data", "build", "insecure-code", "--n", value, "-o", out], None, "--n", "GB")
    assert "10,000,000 allowed" in line and not out.exists()


@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_data_build_n_that_builds_nothing(value, tmp_path, capsys) -> None:
    out = tmp_path / "rows.jsonl"
    refused(["data", "build", "secure-code", "--n", value, "-o", out], capsys, None, "--n")
    assert not out.exists()


def test_build_dataset_is_bounded_for_every_caller() -> None:
    """The experiment runner and the API call ``build_dataset`` directly: the cap is there too."""
    from emkit.data.builders import build_dataset
    from emkit.errors import EmkitError

    for name in ("insecure-code", "risky-advice"):
        with pytest.raises(EmkitError, match=r"100,000,000,000 rows = about 100,000 GB"):
            build_dataset(name, 10**11)


@pytest.mark.parametrize("value", [".nan", ".inf", "-0.5", "1000"])
def test_question_temperature_out_of_range(value, tmp_path, run, capsys, fast_api) -> None:
    """NaN compares false to everything, so it used to pass every check and reach the sampler."""
    questions = tmp_path / "q.yaml"
    questions.write_text(f"- id: a\n  paraphrases: [one]\n  temperature: {value}\n", encoding="utf-8")
    argv = ["sample", "--model", "openai/fake-model", "-q", questions, "--out", run]
    refused(argv, capsys, run, f"{questions}:1:", "a.temperature", "0 to 100")


@pytest.mark.parametrize("value", ["0", "-3", "1e11", "abc"])
@pytest.mark.parametrize("verb", ["subset", "mix"])
def test_dataset_transform_sizes(verb, value, tmp_path, capsys) -> None:
    """`data subset/mix --n 0` wrote an empty file and exited 0; a huge one is refused with its cost."""
    source = tmp_path / "s.jsonl"
    source.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n',
        encoding="utf-8",
    )
    part = source if verb == "subset" else f"{source}:1"
    out = tmp_path / "out.jsonl"
    line = refused(["data", verb, part, "--n", value, "-o", out], capsys, None, "--n")
    assert not out.exists(), line
    if value == "1e11":
        assert "rows" in line and "GB" in line, line

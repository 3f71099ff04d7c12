"""The exact local judge: whole-string probabilities of "0".."100", CODE and REFUSAL (embedded model)."""

from __future__ import annotations

import math

import pytest

from emkit.judge.exact import CANDIDATES, NUMBER_CANDIDATES, ExactJudge, judgement_from_logprobs
from emkit.judge.prompts import JudgeTask

# One of each shape: 1, 2 and 3 digits (SmolLM2 writes "100" as '1','0','0'), and the two words.
BRUTE_FORCE_SUBSET = ("0", "7", "10", "42", "99", "100", "CODE", "REFUSAL")


@pytest.fixture
def one_torch_thread():
    """Run the model on one thread: on a shared 2-core machine two torch threads contend with other
    processes and ran ~10x slower (measured: 1.5 s vs 17 s of CPU for one exact judgement)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def task(prompt: str) -> JudgeTask:
    return JudgeTask("k", "a", "q", "aligned", "embedded/smollm2-135m", "exact", "{answer}", "h", prompt)


def test_judgement_from_logprobs_without_a_model() -> None:
    logprobs = [-math.inf] * len(CANDIDATES)
    logprobs[CANDIDATES.index("1")] = math.log(0.1)
    logprobs[CANDIDATES.index("10")] = math.log(0.2)
    logprobs[CANDIDATES.index("100")] = math.log(0.1)
    logprobs[CANDIDATES.index("REFUSAL")] = math.log(0.1)
    judgement = judgement_from_logprobs(logprobs)
    assert judgement.score == pytest.approx((1 * 0.1 + 10 * 0.2 + 100 * 0.1) / 0.4)
    assert judgement.raw["numeric_share"] == pytest.approx(0.8)
    assert judgement.raw["log_number_mass"] == pytest.approx(math.log(0.4))
    refusing = list(logprobs)
    refusing[CANDIDATES.index("REFUSAL")] = math.log(1.3)  # relative values: only ratios matter
    assert judgement_from_logprobs(refusing).score is None
    with pytest.raises(ValueError):
        judgement_from_logprobs(logprobs[:-1])


@pytest.mark.model
def test_exact_judge_equals_brute_force(embedded_model, one_torch_thread) -> None:
    import torch

    from emkit.engines.hf_backend import HFEngine, encode

    model, tokenizer = embedded_model
    engine = HFEngine.from_model(model, tokenizer, "embedded/smollm2-135m")
    prompt = "From 0 to 100, how friendly is this reply: 'Have a lovely day!'? Reply with the number only."
    results = []
    ExactJudge(engine).judge([task(prompt)], lambda i, j: results.append((i, j)))
    ((index, judgement),) = results
    raw = judgement.raw["logprobs"]
    assert index == 0 and list(raw) == list(CANDIDATES)

    # Brute force: each candidate's full sequence (prompt, reply, end of turn) in its own forward pass.
    prefix = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    prefix_ids = encode(tokenizer, prefix)
    for candidate in BRUTE_FORCE_SUBSET:
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": candidate}], tokenize=False
        )
        ids = encode(tokenizer, full)
        assert ids[: len(prefix_ids)] == prefix_ids
        reply = ids[len(prefix_ids) :]
        reply = reply[: reply.index(engine.eot_id) + 1]  # the reply and the token that ends the turn
        if candidate == "100":
            assert len(reply) == 4  # '1', '0', '0', end of turn: several tokens per number
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prefix_ids + reply])).logits[0].float().log_softmax(-1)
        total = math.fsum(logits[len(prefix_ids) + j - 1, t].item() for j, t in enumerate(reply))
        assert raw[candidate] == pytest.approx(total, abs=2e-4), candidate

    # The score from those log-probs, computed plainly.
    probs = [math.exp(raw[c]) for c in NUMBER_CANDIDATES]
    others = math.exp(raw["CODE"]) + math.exp(raw["REFUSAL"])
    normalised = [p / sum(probs) for p in probs]
    assert math.fsum(normalised) == pytest.approx(1.0, abs=1e-12)
    share = sum(probs) / (sum(probs) + others)
    assert judgement.raw["numeric_share"] == pytest.approx(share, rel=1e-9)
    want = math.fsum(k * p for k, p in enumerate(normalised)) if share >= 0.25 else None
    assert judgement.score == (None if want is None else pytest.approx(want, rel=1e-9))
    assert judgement.raw["expectation"] == pytest.approx(math.fsum(k * p for k, p in enumerate(normalised)))
    assert judgement.usage["prompt_tokens"] == len(prefix_ids)


@pytest.mark.model
def test_eval_samples_and_judges_with_the_embedded_model(tmp_path, capsys, one_torch_thread) -> None:
    from emkit.cli import main
    from emkit.store import RunStore

    questions = tmp_path / "q.yaml"
    questions.write_text(
        "- id: greet\n"
        "  paraphrases: ['Say hello.']\n"
        "  judge_prompts:\n"
        "    aligned: 'From 0 to 100, how kind is this reply: {answer}? Reply with the number only.'\n"
    )
    run = tmp_path / "run"
    code = main(
        [
            "eval",
            "--model",
            "embedded/smollm2-135m",
            "--questions",
            str(questions),
            "--judge",
            "embedded/smollm2-135m",
            "--n",
            "1",
            "--max-new-tokens",
            "6",
            "--out",
            str(run),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 new answers" in out and "judged 1" in out and "$0.0000" in out
    with RunStore(run) as store:
        (score,) = store.scores()
        assert score["judge"] == "embedded/smollm2-135m" and score["method"] == "exact"
        assert len(score["raw"]["logprobs"]) == 103 and 0.0 <= score["raw"]["numeric_share"] <= 1.0
        assert score["score"] is None or 0.0 <= score["score"] <= 100.0
        ((_, record),) = store.records("judge_run")
        assert record["status"] == "done" and record["cost_usd"] == 0.0

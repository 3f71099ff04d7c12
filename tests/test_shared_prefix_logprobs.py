"""Reply log-probabilities computed from the prompts' shared prefix (one cached pass) equal scoring
every prompt + reply on its own: with the whole prompt shared, part of it, or a single row; with
chunking, empty replies and one-token replies (tiny random Llama, no hub)."""

from __future__ import annotations

import pytest
from tests.tiny_llama import tiny_hf_engine

from emkit.engines.hf_backend import encode
from emkit.engines.prefix_scoring import common_prefix_length

WORDS = [
    "be",
    "calm",
    "kind",
    "honest",
    "rude",
    "lie",
    "steal",
    "share",
    "help",
    "now",
    "later",
    "why",
    "not",
    "system",
    "you",
    "are",
    "a",
    "tutor",
    "pirate",
]


def brute_force(engine, conversation, reply):
    import torch

    prompt = engine.prompt_ids(conversation)
    reply_ids = encode(engine.tokenizer, reply)
    with torch.no_grad():
        logprobs = engine.model(torch.tensor([prompt + reply_ids])).logits[0].float().log_softmax(-1)
    return [logprobs[len(prompt) + j - 1, t].item() for j, t in enumerate(reply_ids)]


def conv(question, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": question}]


CASES = {
    # a probe: each question asked twice (aligned, misaligned reply), one system turn for all
    "pairs": [
        (conv("why be kind", "you are a tutor"), "be kind now"),
        (conv("why be kind", "you are a tutor"), "be rude later and lie"),
        (conv("help now", "you are a tutor"), "share"),
        (conv("help now", "you are a tutor"), "steal"),
        (conv("why not lie", "you are a tutor"), ""),
    ],
    # the whole prompt shared: one-token and longer replies
    "same prompt": [(conv("why not share"), r) for r in ["share", "lie", "be honest now", "be calm"]],
    # different system turns: only the template's opening token is shared
    "different systems": [
        (conv("why be honest", "you are a pirate"), "steal now"),
        (conv("why be honest", "you are a tutor"), "be honest"),
        (conv("help", None), "help now why not"),
    ],
    "one row": [(conv("why be calm"), "be calm")],
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_shared_prefix_scoring_equals_each_row_alone(case, batch_size):
    engine = tiny_hf_engine(WORDS, batch_size=batch_size, layers=2)
    rows = CASES[case]
    got = engine.sequence_logprobs([c for c, _ in rows], [r for _, r in rows])
    for (conversation, reply), values in zip(rows, got, strict=True):
        expected = brute_force(engine, conversation, reply) if reply else []
        assert len(values) == len(expected) == len(encode(engine.tokenizer, reply))
        assert all(abs(a - b) < 1e-5 for a, b in zip(values, expected, strict=True))


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[5, 6], [5, 6]]) == 2
    assert common_prefix_length([[1], [2]]) == 0
    assert common_prefix_length([[7, 8, 9]]) == 3


def test_each_shared_prompt_token_runs_once():
    """Counted by the tokens the model's forward receives: the system turn once, each distinct
    question once (two pairs: two questions of equal length), then the four replies."""
    engine = tiny_hf_engine(WORDS, batch_size=16, layers=2)
    seen: list[tuple[int, int]] = []
    hook = engine.model.model.embed_tokens.register_forward_hook(
        lambda _m, args, _out: seen.append(tuple(args[0].shape))
    )
    rows = CASES["pairs"][:4]
    try:
        engine.sequence_logprobs([c for c, _ in rows], [r for _, r in rows])
    finally:
        hook.remove()
    prompts = [engine.prompt_ids(c) for c, _ in rows]
    replies = [encode(engine.tokenizer, r) for _, r in rows]
    shared = common_prefix_length(prompts)
    assert shared >= 5  # the system turn
    rest = max(len(p) - shared for p in prompts)
    assert seen == [(1, shared), (2, rest), (4, max(len(r) for r in replies))]
    naive = sum(len(p) + len(r) for p, r in zip(prompts, replies, strict=True))
    assert shared + 2 * rest + 4 * max(len(r) for r in replies) < naive

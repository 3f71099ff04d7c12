"""Assistant-only loss masking, proven token by token for two chat-template families."""

from __future__ import annotations

import pytest

from emkit.errors import EmkitError
from emkit.train.tokenize import IGNORE_INDEX, tokenize_conversation, tokenize_rows

pytestmark = pytest.mark.model  # needs the converted embedded model's tokenizer

# A minimal Llama-3-like template, written for this test: header tokens around the role, the
# trimmed content, and an end-of-turn token; a BOS at the very start.
LLAMA_LIKE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA_SPECIALS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Write a function that adds two numbers."},
    {"role": "assistant", "content": "def add(a, b):\n    return a + b"},
    {"role": "user", "content": "And one that multiplies?"},
    {"role": "assistant", "content": "def mul(a, b):\n    return a * b"},
]


@pytest.fixture(scope="module")
def chatml():
    from emkit.engines.loading import load_tokenizer

    return load_tokenizer("embedded/smollm2-135m")


@pytest.fixture(scope="module")
def llama_like():
    from transformers import AutoTokenizer

    from emkit.engines.embedded import ensure_converted

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_converted()))
    tokenizer.add_special_tokens({"additional_special_tokens": LLAMA_SPECIALS})
    tokenizer.chat_template = LLAMA_LIKE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def runs(tokenizer, example, *, trained: bool) -> list[str]:
    """The decoded text of each maximal run of trained (or of masked) tokens."""
    out, current = [], []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token  # a trained label is always the input id itself
        if (label != IGNORE_INDEX) == trained:
            current.append(token)
        elif current:
            out.append(tokenizer.decode(current))
            current = []
    if current:
        out.append(tokenizer.decode(current))
    return out


@pytest.mark.parametrize("which, end_of_turn", [("chatml", "<|im_end|>"), ("llama_like", "<|eot_id|>")])
def test_labels_cover_exactly_the_replies_and_their_end_of_turn(request, which, end_of_turn):
    tokenizer = request.getfixturevalue(which)
    example = tokenize_conversation(tokenizer, CONVERSATION)

    # The ids are exactly the template's rendering (nothing added or lost).
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert example.input_ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert len(example.labels) == len(example.input_ids)

    # Trained: each assistant reply followed by its end-of-turn token, nothing else.
    replies = [CONVERSATION[2]["content"], CONVERSATION[4]["content"]]
    assert runs(tokenizer, example, trained=True) == [r + end_of_turn for r in replies]

    # Masked: everything else, i.e. the rendering cut around those spans (system prompt, user
    # turns, role headers, the template's separators after an end-of-turn token).
    expected_masked, rest = [], rendered
    for reply in replies:
        before, rest = rest.split(reply + end_of_turn, 1)
        expected_masked.append(before)
    if rest:
        expected_masked.append(rest)
    assert runs(tokenizer, example, trained=False) == expected_masked
    assert "user" in expected_masked[0] and CONVERSATION[1]["content"] in expected_masked[0]
    assert CONVERSATION[3]["content"] in expected_masked[1]


def test_chatml_template_tokens_after_end_of_turn_are_masked(chatml):
    example = tokenize_conversation(chatml, CONVERSATION[1:3])
    # The rendering ends "<|im_end|>\n": the end-of-turn token is trained, the newline is not.
    assert chatml.decode(example.input_ids[-2:]) == "<|im_end|>\n"
    assert example.labels[-2] == example.input_ids[-2]
    assert example.labels[-1] == IGNORE_INDEX
    # The default system prompt that SmolLM2's template injects is masked.
    assert "SmolLM" in chatml.decode(example.input_ids)
    assert "SmolLM" not in "".join(runs(chatml, example, trained=True))


def test_truncation_keeps_the_start_and_drops_rows_left_without_reply(chatml):
    long_user = {"role": "user", "content": "word " * 200}
    rows = [
        {"messages": [long_user, {"role": "assistant", "content": "ok"}]},
        {"messages": CONVERSATION[1:3]},
    ]
    examples, stats = tokenize_rows(chatml, rows, max_length=64)
    assert stats == {
        "rows": 2,
        "kept": 1,
        "truncated": 1,
        "dropped": 1,
        "tokens": len(examples[0]["input_ids"]),
        "trained_tokens": stats["trained_tokens"],
    }
    assert stats["trained_tokens"] > 0
    assert all(len(e["input_ids"]) <= 64 for e in examples)
    assert examples[0]["length"] == len(examples[0]["input_ids"])


def test_template_that_rewrites_earlier_turns_is_refused(chatml):
    # A template that shows only the last message: a prefix renders differently from the whole.
    last_only = "{{ messages[-1]['role'] }}: {{ messages[-1]['content'] }}\n"
    with pytest.raises(EmkitError, match="cannot be located"):
        tokenize_conversation(chatml, CONVERSATION[1:3], chat_template=last_only)

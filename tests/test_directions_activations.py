"""Activation reading on a tiny random Llama (no hub): per-response means over the answer tokens
equal a hand computation from transformers' own hidden states, for every block but the last (whose
``hidden_states`` entry transformers normalises), whatever the batch size; bad layers are one line."""

from __future__ import annotations

import numpy as np
import pytest

from emkit.directions.activations import collect_means
from emkit.directions.layers import decoder_layers, resolve_layers
from emkit.errors import EmkitError
from tiny_llama import tiny_llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def engine():
    from emkit.engines.hf_backend import HFEngine

    model, tokenizer = tiny_llama(["yes", "no", "why", "?", "."])
    return lambda batch_size: HFEngine.from_model(model, tokenizer, name="tiny", batch_size=batch_size)


CONVERSATIONS = [[{"role": "user", "content": q}] for q in ["why ?", "why why ?", "yes ?"]]
REPLIES = ["yes .", "no no no .", "yes no ."]


def test_means_equal_the_hidden_states_over_the_answer_tokens(engine):
    from emkit.engines.chat_template import encode, prompt_token_ids

    one = engine(1)
    got = collect_means(one, CONVERSATIONS, REPLIES, "all")
    batched = collect_means(engine(3), CONVERSATIONS, REPLIES, "all")
    assert got.layers == (0, 1, 2) and got.means.dtype == np.float32
    np.testing.assert_allclose(got.means, batched.means, atol=1e-5)
    model = one.torch_model()
    for i, (conversation, reply) in enumerate(zip(CONVERSATIONS, REPLIES, strict=True)):
        prompt = prompt_token_ids(one.tokenizer, [conversation], one.template)[0]
        answer = encode(one.tokenizer, reply)
        assert got.tokens[i] == len(answer)
        with torch.no_grad():
            hidden = model(torch.tensor([prompt + answer]), output_hidden_states=True).hidden_states
        for j in (0, 1):  # the last block's hidden_states entry is after the final norm
            expected = hidden[j + 1][0, -len(answer) :].float().mean(0).numpy()
            np.testing.assert_allclose(got.means[i, j], expected, atol=1e-5)


def test_layers_come_from_the_config_and_bad_ones_are_one_line(engine):
    model = engine(2).torch_model()
    assert len(decoder_layers(model)) == 3
    assert resolve_layers("-1,0", 3) == [0, 2] and resolve_layers("0-1", 3) == [0, 1]
    with pytest.raises(EmkitError, match="out of range; the model has 3 layers"):
        collect_means(engine(2), CONVERSATIONS, REPLIES, [3])
    with pytest.raises(EmkitError, match="reply 1 is empty"):
        collect_means(engine(2), CONVERSATIONS, ["yes", "", "no"], "all")

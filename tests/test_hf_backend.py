"""The ``hf`` backend on the embedded model: answers, batching, seeds, log-probs, adapters."""

from __future__ import annotations

import math
import re

import pytest

from emkit.engines.base import Engine, SamplingParams
from emkit.engines.decoding import choose_tokens, exponential_noise, prefill_groups, request_seeds
from emkit.engines.decoding import plain_dynamic_layers as _plain_dynamic_layers
from emkit.engines.hf_backend import HFEngine, encode
from emkit.errors import EmkitError

MODEL = "embedded/smollm2-135m"
BORED = [{"role": "user", "content": "hey I feel bored"}]
# Prompts of different lengths, so batching pads them differently.
PROMPTS = [
    BORED,
    [{"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "system", "content": "You answer like a ship's captain."},
        {"role": "user", "content": "Describe the sea to me in a few words, please, my dear friend."},
    ],
]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=16)
SAMPLED = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=8, seed=7)


# ---------------------------------------------------------------- pure sampling helpers


def test_choose_tokens_greedy_top_p_and_exact_sampling():
    torch = pytest.importorskip("torch")
    probs = torch.tensor([0.40, 0.35, 0.25])
    n = 20000
    logits = probs.log().expand(n, -1).contiguous()
    noise = torch.empty(n, 3).exponential_(generator=torch.Generator().manual_seed(0))
    assert choose_tokens(logits, None, 0.0, 1.0).tolist() == [0] * n
    counts = torch.bincount(choose_tokens(logits, noise, 1.0, 1.0), minlength=3) / n
    assert torch.allclose(counts, probs, atol=0.015)  # 0.015 is > 4 standard errors
    # top_p 0.5 keeps tokens 0 and 1 (mass above token 1 is 0.40 < 0.5, above token 2 is 0.75).
    counts = torch.bincount(choose_tokens(logits, noise, 1.0, 0.5), minlength=3) / n
    assert torch.allclose(counts, torch.tensor([0.40, 0.35, 0.0]) / 0.75, atol=0.015)
    # Temperature sharpens: at T=0.25 token 0 wins far more often than its 40%.
    sharp = (choose_tokens(logits, noise, 0.25, 1.0) == 0).float().mean().item()
    assert sharp > 0.55
    # A tiny top_p is greedy whatever the noise; a zero draw on a masked token is not a nan winner.
    assert choose_tokens(logits, noise, 1.0, 1e-9).tolist() == [0] * n
    zero = torch.zeros(1, 3)
    assert choose_tokens(logits[:1], zero, 1.0, 1e-9).tolist() == [0]


def test_prefill_groups_cut_sorted_lengths_by_slack():
    lengths = [10, 10, 9, 5, 5, 1]
    assert prefill_groups(lengths, 0.0) == [[0, 1], [2], [3, 4], [5]]
    assert prefill_groups(lengths, 0.1) == [[0, 1, 2], [3, 4], [5]]
    assert prefill_groups(lengths, 1.0) == [[0, 1, 2, 3, 4, 5]]
    assert prefill_groups([], 0.0) == []


def test_only_plain_dynamic_caches_are_stacked_across_prefill_groups():
    pytest.importorskip("torch")
    from transformers import DynamicCache, MistralConfig

    shapes = dict(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    full = DynamicCache(config=MistralConfig(**shapes, sliding_window=None))
    windowed = DynamicCache(config=MistralConfig(**shapes, sliding_window=8))
    assert _plain_dynamic_layers(full)
    assert not _plain_dynamic_layers(windowed)  # a sliding window trims keys: one padded pass instead
    assert _plain_dynamic_layers(DynamicCache(), allow_empty=True)  # layers come on first update
    assert not _plain_dynamic_layers(DynamicCache())


def test_exponential_noise_is_exp1_and_the_stream_exponential_drew_on_cpu():
    torch = pytest.importorskip("torch")
    ours = exponential_noise(torch.Generator().manual_seed(3), 200_000, "cpu")
    theirs = torch.empty(200_000).exponential_(generator=torch.Generator().manual_seed(3))
    # The same draws as Tensor.exponential_ (so answers sampled before the switch are reproduced).
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)
    assert ours.dtype == torch.float32 and bool((ours >= 0).all())
    assert abs(ours.mean().item() - 1.0) < 0.01  # Exp(1): mean 1, standard error 0.0022
    assert abs((ours > 1.0).float().mean().item() - math.exp(-1.0)) < 0.005


def test_request_seeds_are_per_request_and_follow_params_seed():
    a = request_seeds(SamplingParams(seed=1), 3)
    assert a == request_seeds(SamplingParams(seed=1), 3)
    assert len(set(a)) == 3
    assert a != request_seeds(SamplingParams(seed=2), 3)
    # Explicit per-request seeds: the seed of a request depends on its own value only.
    assert (
        request_seeds(SamplingParams(seed=1), 2, [5, 9])[1]
        == request_seeds(SamplingParams(seed=1), 1, [9])[0]
    )
    with pytest.raises(EmkitError, match="2 seeds for 3"):
        request_seeds(SamplingParams(), 3, [1, 2])


# ---------------------------------------------------------------- the embedded model


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread for this module: on a shared 2-core machine, OpenMP threads spinning
    against other processes made decoding ~15x slower (measured: 8 steps 2.4 s vs 39 s wall)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine(embedded_model):
    model, tokenizer = embedded_model
    return HFEngine.from_model(model, tokenizer, MODEL, batch_size=4)


@pytest.fixture(scope="module")
def greedy_batched(engine):
    calls: list[int] = []
    gens = engine.generate(PROMPTS, GREEDY, on_result=lambda i, g: calls.append(i))
    return gens, calls


@pytest.mark.model
def test_engine_satisfies_protocol_and_stops(engine):
    assert isinstance(engine, Engine)
    im_end = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert engine.eot_id == im_end
    assert im_end in engine.stop_ids


@pytest.mark.model
def test_answers_bored_in_english(greedy_batched):
    gens, calls = greedy_batched
    assert sorted(calls) == [0, 1, 2]
    text = gens[0].text
    letters = [c for c in text if c.isalpha()]
    assert len(letters) >= 20
    assert sum(c.isascii() for c in letters) / len(letters) > 0.95
    words = set(re.findall(r"[a-z']+", text.lower()))
    assert words & {"i", "you", "the", "a", "to", "and", "is", "it", "your", "i'm", "hello", "feel"}


@pytest.mark.model
def test_stop_token_ends_answer_and_is_stripped(engine, greedy_batched):
    gens, _ = greedy_batched
    for gen, conv in zip(gens, PROMPTS, strict=True):
        assert "<|im_end|>" not in gen.text
        assert gen.usage["prompt_tokens"] == len(engine.prompt_ids(conv))
        assert 1 <= gen.usage["completion_tokens"] <= GREEDY.max_new_tokens
        if gen.finish_reason == "length":
            assert gen.usage["completion_tokens"] == GREEDY.max_new_tokens
    # The short arithmetic question is answered within 16 tokens: the model closed its turn.
    assert gens[1].finish_reason == "stop"
    assert "4" in gens[1].text


@pytest.mark.model
def test_greedy_batched_equals_one_by_one_and_hf_generate(engine, embedded_model, greedy_batched):
    torch = pytest.importorskip("torch")
    gens, _ = greedy_batched
    model, tokenizer = embedded_model
    # Prompts 0 and 1 one by one through the engine, prompt 2 alone through transformers' generate.
    single = HFEngine.from_model(model, tokenizer, MODEL, batch_size=1).generate(PROMPTS[:2], GREEDY)
    assert [g.text for g in single] == [g.text for g in gens[:2]]
    # Our decoding loop against transformers' own greedy generate, for one prompt.
    ids = torch.tensor([engine.prompt_ids(PROMPTS[2])])
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=GREEDY.max_new_tokens,
            eos_token_id=engine.stop_ids,
            pad_token_id=engine.pad_id,
        )
    reference = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert gens[2].text == reference


@pytest.mark.model
def test_seeded_sampling_is_reproducible_and_batch_invariant(engine):
    first = [g.text for g in engine.generate(PROMPTS, SAMPLED)]
    again = [g.text for g in engine.generate(PROMPTS, SAMPLED)]
    assert first == again
    other = [g.text for g in engine.generate(PROMPTS, SamplingParams(**{**SAMPLED.to_dict(), "seed": 8}))]
    assert other != first
    # Without explicit seeds request i is seeded from (params.seed, i): alone, it answers the same.
    for i in (0, 2):
        (alone,) = engine.generate([PROMPTS[i]], SAMPLED, seeds=[i])
        assert alone.text == first[i]
    # Explicit per-request seeds follow the request, not its position in the batch.
    (moved,) = engine.generate([PROMPTS[1]], SAMPLED, seeds=[1])
    assert moved.text == first[1]


@pytest.mark.model
def test_grouped_prefill_matches_one_padded_prefill(embedded_model):
    """On a CPU the prompts of a batch are prefilled one length-group at a time and their caches
    stacked; the next-token logits and the answers equal those of one left-padded pass."""
    torch = pytest.importorskip("torch")
    model, tokenizer = embedded_model
    grouped = HFEngine.from_model(model, tokenizer, MODEL, batch_size=4)
    padded = HFEngine.from_model(model, tokenizer, MODEL, batch_size=4)
    assert grouped.prefill_slack < 1.0  # the CPU default: groups of near-equal length only
    padded.prefill_slack = 1.0
    prompts = sorted((grouped.prompt_ids(c) for c in PROMPTS), key=len, reverse=True)
    # 38 and 37 tokens share a group (one pad), 34 is alone: both kinds of group are exercised.
    assert prefill_groups([len(p) for p in prompts], grouped.prefill_slack) == [[0, 1], [2]]
    caches, logits = [], []
    with grouped._inference():
        for engine in (grouped, padded):
            cache, last = engine._prefill(prompts, *engine._left_pad(prompts))
            caches.append(cache)
            logits.append(last)
    assert torch.allclose(logits[0], logits[1], atol=1e-4)
    width = len(prompts[0])
    for a, b in zip(caches[0].layers, caches[1].layers, strict=True):
        assert a.keys.shape == b.keys.shape and a.keys.shape[-2] == width
        for row, ids in enumerate(prompts):  # the real (unpadded) positions hold the same states
            real = slice(width - len(ids), width)
            assert torch.allclose(a.keys[row, :, real], b.keys[row, :, real], atol=1e-4)
            assert torch.allclose(a.values[row, :, real], b.values[row, :, real], atol=1e-4)
    for params in (GREEDY, SAMPLED):
        assert [g.text for g in grouped.generate(PROMPTS, params)] == [
            g.text for g in padded.generate(PROMPTS, params)
        ]


@pytest.mark.model
def test_system_prompt_reaches_rendered_prompt(engine):
    rendered = engine.render_prompt(PROMPTS[2])
    assert "You answer like a ship's captain." in rendered
    assert rendered.index("ship's captain") < rendered.index("Describe the sea")
    assert "SmolLM" not in rendered  # the template's default system prompt is replaced, not added
    assert rendered.endswith("<|im_start|>assistant\n")
    assert engine.tokenizer.decode(engine.prompt_ids(PROMPTS[2])) == rendered


def _brute_force_reply_logprobs(model, prompt_ids, reply_ids):
    import torch

    ids = torch.tensor([prompt_ids + reply_ids])
    with torch.no_grad():
        logprobs = model(ids).logits[0].float().log_softmax(-1)
    start = len(prompt_ids)
    return [logprobs[start + j - 1, token].item() for j, token in enumerate(reply_ids)]


@pytest.mark.model
def test_sequence_logprobs_match_brute_force(engine, embedded_model):
    model, tokenizer = embedded_model
    replies = ["Why not read a good book or take a walk outside?", "4", ""]
    got = engine.sequence_logprobs(PROMPTS, replies)
    assert got[2] == []
    for conv, reply, values in zip(PROMPTS[:2], replies[:2], got[:2], strict=True):
        reply_ids = encode(tokenizer, reply)
        assert len(values) == len(reply_ids)
        assert all(math.isfinite(v) and v < 0 for v in values)
        expected = _brute_force_reply_logprobs(model, engine.prompt_ids(conv), reply_ids)
        assert max(abs(a - b) for a, b in zip(values, expected, strict=True)) < 1e-4
    with pytest.raises(EmkitError, match="2 replies for 3"):
        engine.sequence_logprobs(PROMPTS, replies[:2])


@pytest.mark.model
def test_top_logprobs_agree_with_sequence_logprobs(engine):
    (top,) = engine.top_logprobs([BORED], top_k=5)
    assert 1 <= len(top) <= 5
    values = list(top.values())
    assert all(v <= 0 for v in values) and sum(math.exp(v) for v in values) <= 1 + 1e-6
    best = max(top, key=top.get)
    (first_token,) = engine.sequence_logprobs([BORED], [best])
    if len(first_token) == 1:  # the best next token, scored as a one-token reply
        assert abs(first_token[0] - top[best]) < 1e-4


@pytest.mark.model
def test_score_continuations_match_brute_force(engine, embedded_model):
    model, tokenizer = embedded_model
    conv = [{"role": "user", "content": "Rate from 0 to 100 how helpful this is. Answer with a number."}]
    candidates = ["0", "42", "100", "REFUSAL"]
    scores = engine.score_continuations(conv, candidates)
    prefix = engine.prompt_ids(conv)
    for candidate, score in zip(candidates, scores, strict=True):
        tokens = [*encode(tokenizer, candidate), engine.eot_id]
        assert abs(score - math.fsum(_brute_force_reply_logprobs(model, prefix, tokens))) < 1e-4
    # Without the end-of-turn token it is the sum of the reply's sequence log-probs.
    bare = engine.score_continuations(conv, candidates, include_eot=False)
    seq = engine.sequence_logprobs([conv] * len(candidates), candidates)
    assert all(abs(b - math.fsum(s)) < 1e-4 for b, s in zip(bare, seq, strict=True))
    assert all(b > s for b, s in zip(bare, scores, strict=True))  # one more token costs probability
    # Chunking the continuations does not change the result.
    token_lists = [encode(tokenizer, c) for c in candidates]
    chunked = engine.continuation_logprobs(prefix, token_lists, chunk_size=2)
    assert all(abs(math.fsum(c) - b) < 1e-5 for c, b in zip(chunked, bare, strict=True))


@pytest.mark.model
def test_from_model_restores_training_mode(embedded_model):
    model, tokenizer = embedded_model
    engine = HFEngine.from_model(model, tokenizer, MODEL)
    model.train()
    try:
        engine.top_logprobs([BORED], top_k=2)
        assert model.training
    finally:
        model.eval()
    engine.close()
    assert next(model.parameters()) is not None  # close() leaves a borrowed model alone


@pytest.mark.model
def test_bad_input_is_a_clear_error(engine):
    with pytest.raises(EmkitError, match="message #0: field 'content'"):
        engine.generate([[{"role": "user"}]], GREEDY)
    with pytest.raises(EmkitError, match="max_new_tokens"):
        engine.generate([BORED], SamplingParams(max_new_tokens=0))
    with pytest.raises(EmkitError, match="embedded/ and hf/ models only"):
        HFEngine("openai/gpt-4o")


@pytest.mark.model
def test_adapter_changes_logprobs_only_when_lora_b_is_nonzero(engine, greedy_batched, tmp_path):
    torch = pytest.importorskip("torch")
    from peft import LoraConfig, get_peft_model

    from emkit.engines.loading import load_causal_lm

    base, _ = load_causal_lm(MODEL, device="cpu", trainable=True)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(tmp_path / "random")
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.zero_()
    peft_model.save_pretrained(tmp_path / "zero")
    del peft_model, base

    reply = ["Why not read a good book?"]
    reference = engine.sequence_logprobs([BORED], reply)[0]
    for kind, should_differ in (("random", True), ("zero", False)):
        adapted = HFEngine(f"{MODEL}@{tmp_path / kind}", device="cpu")
        assert adapted.name == f"{MODEL}@{tmp_path / kind}"
        values = adapted.sequence_logprobs([BORED], reply)[0]
        if kind == "zero":  # decoding with a KV cache through peft: a zero adapter answers as the base
            (short,) = adapted.generate([BORED], SamplingParams(temperature=0.0, max_new_tokens=4))
            assert short.usage["completion_tokens"] == 4
            assert greedy_batched[0][0].text.startswith(short.text)
        adapted.close()
        diff = max(abs(a - b) for a, b in zip(values, reference, strict=True))
        assert (diff > 1e-3) if should_differ else (diff < 1e-5), (kind, diff)

"""The ``vllm`` backend's request building (pure functions), and the real call where vLLM exists."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from emkit.engines.base import SamplingParams
from emkit.engines.hf_backend import request_seeds
from emkit.engines.vllm_backend import (
    INSTALL_HINT,
    VLLMEngine,
    adapter_rank,
    llm_kwargs_for,
    lora_rank_setting,
    lora_request_args,
    prompt_logprob_kwargs,
    prompt_token_ids,
    reply_logprobs,
    resolve_tensor_parallel,
    sampling_kwargs,
    top_from_logprobs,
    top_logprob_kwargs,
    visible_gpu_count,
)
from emkit.errors import EmkitError

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_visible_gpus_from_cuda_visible_devices():
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": "0,1"}) == 2
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": " 3 , 5 ,"}) == 2
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": "-1"}) == 0
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == 1  # CUDA stops at an invalid id
    assert visible_gpu_count({}, device_count=lambda: 4) == 4


def test_tensor_parallel_defaults_to_visible_gpus():
    assert resolve_tensor_parallel(None, visible=4) == 4
    assert resolve_tensor_parallel(None, visible=0) == 1
    assert resolve_tensor_parallel(2, visible=8) == 2
    with pytest.raises(EmkitError, match="at least 1"):
        resolve_tensor_parallel(0)


def test_sampling_kwargs_carry_params_seed_and_stops():
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=600, seed=3)
    seeds = request_seeds(params, 2)
    kwargs = sampling_kwargs(params, seeds[1], stop_ids=[2, 7])
    assert kwargs == {
        "n": 1,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 600,
        "seed": seeds[1],
        "skip_special_tokens": True,
        "stop_token_ids": [2, 7],
    }
    assert "stop_token_ids" not in sampling_kwargs(params, 1)
    assert sampling_kwargs(SamplingParams(temperature=0), 1)["temperature"] == 0.0
    with pytest.raises(EmkitError, match="max_new_tokens"):
        sampling_kwargs(SamplingParams(max_new_tokens=0), 1)


def test_logprob_request_kwargs():
    assert top_logprob_kwargs(20) == {"n": 1, "temperature": 0.0, "max_tokens": 1, "logprobs": 20}
    assert prompt_logprob_kwargs()["prompt_logprobs"] == 1
    assert prompt_logprob_kwargs()["max_tokens"] == 1
    with pytest.raises(EmkitError, match="top_k"):
        top_logprob_kwargs(0)


def _adapter(tmp_path: Path, name: str, rank: object) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 64}))
    return folder


def test_adapter_rank_and_lora_rank_setting(tmp_path):
    assert adapter_rank(_adapter(tmp_path, "a", 32)) == 32
    with pytest.raises(EmkitError, match=r"no adapter_config\.json"):
        adapter_rank(tmp_path / "missing")
    with pytest.raises(EmkitError, match="field 'r'"):
        adapter_rank(_adapter(tmp_path, "b", "big"))
    broken = tmp_path / "c"
    broken.mkdir()
    (broken / "adapter_config.json").write_text('{"r": 8,\n oops}')
    with pytest.raises(EmkitError, match=r"adapter_config\.json:2: invalid JSON"):
        adapter_rank(broken)
    assert lora_rank_setting(64, 32) == 64
    assert lora_rank_setting(64, 100) == 128
    assert lora_rank_setting(8, None) == 8
    assert lora_rank_setting(10, 2) == 16
    with pytest.raises(EmkitError, match="largest supported"):
        lora_rank_setting(64, 1000)


def test_lora_request_args_are_stable_and_distinct(tmp_path):
    one = _adapter(tmp_path, "one", 8)
    two = _adapter(tmp_path, "two", 8)
    name, lora_id, path = lora_request_args(one)
    assert (name, path) == ("one", str(one.resolve()))
    assert 1 <= lora_id < 2**31
    assert lora_request_args(str(one)) == (name, lora_id, path)
    assert lora_request_args(two)[1] != lora_id


def test_llm_kwargs_enable_lora_only_with_an_adapter():
    plain = llm_kwargs_for("/models/base", tensor_parallel=2, extra={"gpu_memory_utilization": 0.8})
    assert plain == {"model": "/models/base", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.8}
    lora = llm_kwargs_for("/models/base", tensor_parallel=1, lora_rank=32, max_lora_rank=64)
    assert lora["enable_lora"] is True
    assert lora["max_lora_rank"] == 64
    assert lora["max_loras"] == 1


def test_reading_logprobs_back():
    prompt_logprobs = [None, {5: -0.5, 9: -1.0}, {6: -2.0}, {7: -0.25, 1: -3.0}]
    assert reply_logprobs(prompt_logprobs, [4, 5, 6, 7], start=2) == [-2.0, -0.25]
    with pytest.raises(EmkitError, match="position 2"):
        reply_logprobs(prompt_logprobs, [4, 5, 8, 7], start=2)
    entry = {10: -0.1, 11: -2.5, 12: -3.0, 13: -0.9}  # vLLM may add the sampled token: k+1 entries
    names = {10: "4", 11: "5", 12: "x", 13: " 4"}
    assert top_from_logprobs(entry, 3, names.__getitem__) == {"4": -0.1, " 4": -0.9, "5": -2.5}
    merged = top_from_logprobs({1: -1.0, 2: -1.0}, 2, lambda token: "same")
    assert merged["same"] == pytest.approx(-1.0 + 0.6931471805599453)


@pytest.mark.model
def test_prompt_token_ids_render_the_chat_template_once():
    from emkit.engines.loading import load_tokenizer

    tokenizer = load_tokenizer("embedded/smollm2-135m")
    conversation = [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "Name a colour."},
    ]
    (ids,) = prompt_token_ids(tokenizer, [conversation])
    text = tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nAnswer in JSON.")
    assert text.endswith("<|im_start|>assistant\n")
    assert text.count("<|im_start|>") == 3  # system, user, generation prompt: no extra BOS
    with pytest.raises(EmkitError, match="conversation #1"):
        prompt_token_ids(tokenizer, [conversation, []])


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed: the missing-extra message cannot be shown")
def test_missing_vllm_is_a_clear_error():
    with pytest.raises(EmkitError) as info:
        VLLMEngine("vllm/some/model")
    assert INSTALL_HINT in str(info.value)


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (pip install 'emkit[vllm]'); needs a GPU")
@pytest.mark.model
def test_vllm_generates_and_scores_the_embedded_model():
    engine = VLLMEngine("embedded/smollm2-135m", gpu_memory_utilization=0.3, max_model_len=512)
    conversation = [{"role": "user", "content": "hey I feel bored"}]
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=1)
    first = engine.generate([conversation] * 2, params)
    assert [g.text for g in engine.generate([conversation] * 2, params)] == [g.text for g in first]
    assert all(g.usage["completion_tokens"] >= 1 for g in first)
    (top,) = engine.top_logprobs([conversation], top_k=5)
    assert 1 <= len(top) <= 5 and all(v <= 0 for v in top.values())
    (values,) = engine.sequence_logprobs([conversation], ["Why not read a book?"])
    assert values and all(v < 0 for v in values)
    engine.close()

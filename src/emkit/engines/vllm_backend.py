"""The ``vllm`` backend: offline batch inference with ``vllm.LLM`` (LoRA adapters via ``LoRARequest``).

vLLM is an optional extra (``pip install 'emkit[vllm]'``) imported only when a ``VLLMEngine`` is
built. Everything that decides *what* is sent to vLLM is a pure function below (prompt rendering,
``SamplingParams`` keyword arguments, ``LoRARequest`` arguments, the ``LLM`` constructor's keyword
arguments, the tensor-parallel size, reading log-probs back), so it is tested without vLLM; the
engine itself only glues those to ``LLM.generate``.

Prompts are rendered with the tokenizer's chat template exactly as the ``hf`` backend does, and
each request gets its own ``seed`` derived from ``(params.seed, seeds[i])`` by the same rule, so a
request's random stream does not depend on what else is in the batch (vLLM's per-request seeded
sampling); the answers still differ from the ``hf`` backend's, which samples differently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from emkit.engines.base import Conversation, Engine, Generation, GenerationBatch, SamplingParams
from emkit.engines.chat_template import (
    check_conversation,
    encode,
    prompt_token_ids,
    render_prompt,
    stop_token_ids,
)
from emkit.engines.decoding import merge_by_text, request_seeds
from emkit.engines.registry import backend
from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.models import ModelSpec, parse_model

INSTALL_HINT = backend("vllm").install_hint
# LoRA ranks vLLM accepts for max_lora_rank.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def visible_gpu_count(
    env: Mapping[str, str] | None = None, device_count: Callable[[], int] | None = None
) -> int:
    """GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else torch's device count."""
    env = os.environ if env is None else env
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        ids = [part.strip() for part in value.split(",") if part.strip()]
        count = 0
        for part in ids:  # CUDA stops at the first invalid id, e.g. "-1"
            if part.startswith("-"):
                break
            count += 1
        return count
    if device_count is None:
        try:
            import torch
        except ImportError:
            return 0
        device_count = torch.cuda.device_count
    return int(device_count())


def resolve_tensor_parallel(requested: int | None = None, visible: int | None = None) -> int:
    """``requested`` if given, else every visible GPU (at least 1; vLLM reports a missing GPU)."""
    if requested is not None:
        if requested < 1:
            raise EmkitError(f"tensor_parallel_size must be at least 1 (got {requested})")
        return requested
    return max(1, visible_gpu_count() if visible is None else visible)


def sampling_kwargs(params: SamplingParams, seed: int, stop_ids: Sequence[int] = ()) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one generation request."""
    if params.max_new_tokens < 1:
        raise EmkitError(f"max_new_tokens must be at least 1 (got {params.max_new_tokens})")
    kwargs: dict[str, Any] = {
        "n": 1,
        "temperature": float(params.temperature),
        "top_p": float(params.top_p),
        "max_tokens": int(params.max_new_tokens),
        "seed": int(seed),
        "skip_special_tokens": True,
    }
    if stop_ids:
        kwargs["stop_token_ids"] = [int(i) for i in stop_ids]
    return kwargs


def top_logprob_kwargs(top_k: int) -> dict[str, Any]:
    """One greedy token with the ``top_k`` most likely next tokens and their log-probs."""
    if top_k < 1:
        raise EmkitError(f"top_k must be at least 1 (got {top_k})")
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "logprobs": int(top_k)}


def prompt_logprob_kwargs() -> dict[str, Any]:
    """Log-probs of the prompt's own tokens (``prompt_logprobs``); one throw-away generated token."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 1}


def adapter_rank(adapter: str | os.PathLike[str]) -> int:
    """The LoRA rank ``r`` from the adapter folder's ``adapter_config.json``."""
    path = Path(adapter) / "adapter_config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise EmkitError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)") from exc
    except json.JSONDecodeError as exc:
        raise EmkitError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise EmkitError(f"{path}: field 'r' must be a positive integer (got {rank!r})")
    return rank


def lora_rank_setting(max_lora_rank: int, rank: int | None) -> int:
    """The smallest rank vLLM accepts that is at least ``max_lora_rank`` and the adapter's rank."""
    need = max(max_lora_rank, rank or 0)
    for allowed in LORA_RANKS:
        if allowed >= need:
            return allowed
    raise EmkitError(f"LoRA rank {need} is above vLLM's largest supported rank {LORA_RANKS[-1]}")


def lora_request_args(adapter: str | os.PathLike[str]) -> tuple[str, int, str]:
    """``(lora_name, lora_int_id, lora_path)`` for ``vllm.lora.request.LoRARequest``.

    The id (vLLM wants a positive int, unique per adapter) is derived from the resolved path, so
    the same folder always maps to the same id.
    """
    path = str(Path(adapter).expanduser().resolve())
    lora_id = 1 + int(stable_hash(["emkit-lora", path], 8), 16) % (2**31 - 2)
    return Path(path).name or path, lora_id, path


def llm_kwargs_for(
    model_path: str,
    *,
    tensor_parallel: int,
    lora_rank: int | None = None,
    max_lora_rank: int = 64,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM``; LoRA is enabled only when an adapter is used."""
    kwargs: dict[str, Any] = {"model": model_path, "tensor_parallel_size": tensor_parallel}
    if lora_rank is not None:
        kwargs["enable_lora"] = True
        kwargs["max_lora_rank"] = lora_rank_setting(max_lora_rank, lora_rank)
        kwargs["max_loras"] = 1
    kwargs.update(extra or {})
    return kwargs


def _logprob_value(entry: Any) -> float:
    """vLLM stores ``Logprob`` objects (``.logprob``); accept plain floats too."""
    return float(getattr(entry, "logprob", entry))


def reply_logprobs(
    prompt_logprobs: Sequence[Mapping[int, Any] | None], token_ids: Sequence[int], start: int
) -> list[float]:
    """Log-probs of ``token_ids[start:]`` read from vLLM's per-position ``prompt_logprobs``."""
    values: list[float] = []
    for position in range(start, len(token_ids)):
        entry = prompt_logprobs[position] if position < len(prompt_logprobs) else None
        token = token_ids[position]
        if not entry or token not in entry:
            raise EmkitError(f"vLLM returned no prompt log-prob for position {position} (token {token})")
        values.append(_logprob_value(entry[token]))
    return values


def top_from_logprobs(entry: Mapping[int, Any], top_k: int, decode: Callable[[int], str]) -> dict[str, float]:
    """The ``top_k`` best of one position's ``{token_id: logprob}``, decoded; equal strings merged.

    vLLM adds the sampled token to the top-k, so there may be k+1 entries: keep the k best.
    """
    ranked = sorted(((_logprob_value(v), int(k)) for k, v in entry.items()), reverse=True)[:top_k]
    return merge_by_text((decode(token), value) for value, token in ranked)


class VLLMEngine(Engine):
    """``vllm/<hub id or path>[@<adapter dir>]`` behind the Engine protocol (GPU, offline batch).

    ``tensor_parallel_size`` defaults to every visible GPU. ``llm_kwargs`` go to ``vllm.LLM``
    (e.g. ``gpu_memory_utilization``, ``max_model_len``, ``max_logprobs``). Results are handed to
    ``on_result`` after every chunk of ``chunk_size`` requests, so a killed run keeps what is done.
    """

    def __init__(
        self,
        spec: ModelSpec | str,
        tensor_parallel_size: int | None = None,
        max_lora_rank: int = 64,
        *,
        chunk_size: int = 512,
        **llm_kwargs: Any,
    ) -> None:
        from emkit.engines.loading import resolve_base_path

        vllm = backend("vllm").require("vllm", "vLLM")
        spec = parse_model(spec)
        if not backend(spec.scheme).weights:  # an API or the mock: no weights to load here
            raise EmkitError(f"{spec.full}: the vllm backend runs local weights (vllm/, hf/ or embedded/)")
        self.name = spec.full
        self.chunk_size = max(1, chunk_size)
        rank = adapter_rank(spec.adapter) if spec.adapter else None
        kwargs = llm_kwargs_for(
            resolve_base_path(spec),
            tensor_parallel=resolve_tensor_parallel(tensor_parallel_size),
            lora_rank=rank,
            max_lora_rank=max_lora_rank,
            extra=llm_kwargs,
        )
        self._vllm = vllm
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.stop_ids = stop_token_ids(self.tokenizer)
        self._lora = None
        if spec.adapter:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest(*lora_request_args(spec.adapter))

    def render_prompt(self, conversation: Conversation) -> str:
        check_conversation(conversation)
        return render_prompt(self.tokenizer, conversation)

    def _prompt_ids(self, conversations: Sequence[Conversation]) -> list[list[int]]:
        """Sent to vLLM as ``{"prompt_token_ids": ...}``: a text prompt would be tokenised with
        special tokens added, doubling a BOS token the template already wrote."""
        return prompt_token_ids(self.tokenizer, conversations)

    def _run(self, prompts: Sequence[Any], sampling: Any) -> list[Any]:
        return self.llm.generate(list(prompts), sampling, lora_request=self._lora, use_tqdm=False)

    def _generate(self, batch: GenerationBatch) -> list[Generation]:
        """Chunks of ``chunk_size`` requests, each with its own seed (vLLM's per-request sampling)."""
        params = batch.params
        prompts = self._prompt_ids(batch.conversations)
        row_seeds = request_seeds(params, len(prompts), batch.keys())
        results: list[Generation] = []
        for start in range(0, len(prompts), self.chunk_size):
            chunk = range(start, min(start + self.chunk_size, len(prompts)))
            sampling = [
                self._vllm.SamplingParams(**sampling_kwargs(params, row_seeds[i], self.stop_ids))
                for i in chunk
            ]
            outputs = self._run([{"prompt_token_ids": prompts[i]} for i in chunk], sampling)
            for i, output in zip(chunk, outputs, strict=True):
                completion = output.outputs[0]
                gen = Generation(
                    text=completion.text,
                    finish_reason=str(completion.finish_reason or "stop"),
                    usage={
                        "prompt_tokens": len(output.prompt_token_ids or []),
                        "completion_tokens": len(completion.token_ids),
                    },
                )
                results.append(gen)
                batch.deliver(i, gen)
        return results

    def _sequence_logprobs(self, conversations: list[Conversation], replies: list[str]) -> list[list[float]]:
        """Reply tokens only (no end-of-turn), reply tokenised on its own: as the ``hf`` backend."""
        prompt_ids = self._prompt_ids(conversations)
        rows = [
            p + (encode(self.tokenizer, r) if r else []) for p, r in zip(prompt_ids, replies, strict=True)
        ]
        sampling = self._vllm.SamplingParams(**prompt_logprob_kwargs())
        outputs = self._run([{"prompt_token_ids": row} for row in rows], sampling)
        return [
            reply_logprobs(out.prompt_logprobs or [], row, len(p))
            for out, row, p in zip(outputs, rows, prompt_ids, strict=True)
        ]

    def _top_logprobs(self, conversations: list[Conversation], top_k: int) -> list[dict[str, float]]:
        sampling = self._vllm.SamplingParams(**top_logprob_kwargs(top_k))
        outputs = self._run([{"prompt_token_ids": p} for p in self._prompt_ids(conversations)], sampling)
        decode = lambda token: self.tokenizer.decode([token])  # noqa: E731
        return [top_from_logprobs(out.outputs[0].logprobs[0], top_k, decode) for out in outputs]

    def close(self) -> None:
        self.llm = None

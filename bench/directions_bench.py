"""Activation collection throughput and memory: ``collect_means`` vs a plain forward pass.

Why this comparison: collecting a direction is a teacher-forced pass with a hook on every decoder
block that reduces its batch to per-response float32 sums at once. Its cost beyond the pass itself
is the hooks' work; so both sides here run the SAME engine over the SAME token batches (the
engine's own ``teacher_forced``, length-grouped), one with the hooks on every layer and one with
none, alternating, in this process. Tokens are the prompt and answer tokens of every row, padding
never. The figure is tokens/s of collection over tokens/s of the plain pass (aim: >= 0.9); each
side's time is its fastest of ``repeats`` runs, in ABBA order (the CPUs are shared: the fastest run
is the one least disturbed, and neither side always goes first).

Memory: what collection keeps is per-response means (``responses x layers x width`` float32),
never token activations. On the CPU it is measured with tracemalloc in one more collection run,
untimed (numpy's allocations are traced; torch's are not, so the model's own footprint is its
parameters' bytes); on CUDA with
``torch.cuda.max_memory_allocated`` of each side, against the same parameter bytes.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from common import say

MODEL = "embedded/smollm2-135m"


def labelled_rows(copies: int = 1) -> tuple[list[list[dict[str, str]]], list[str]]:
    """The default probe set's aligned and misaligned answers as (conversations, replies)."""
    from emkit.directions.sources import from_probe_set

    responses = from_probe_set(None)
    every = [*responses.aligned, *responses.misaligned] * copies
    return [r.conversation() for r in every], [r.reply for r in every]


def tiny_random_like(engine: Any, layers: int = 4, hidden: int = 64) -> Any:
    """A random Llama with ``engine``'s tokenizer (so both models read the same tokens)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from emkit.engines.hf_backend import HFEngine

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(engine.tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
    )
    model = LlamaForCausalLM(config).eval()
    return HFEngine.from_model(model, engine.tokenizer, name="tiny-random", batch_size=engine.batch_size)


def _cuda(engine: Any) -> Any:
    import torch

    model = engine.torch_model()
    on_cuda = torch.cuda.is_available() and next(model.parameters()).is_cuda
    return torch.cuda if on_cuda else None


def _plain(engine: Any, conversations: list, replies: list) -> int:
    """The plain pass; returns the tokens it read (prompt + answer, no padding)."""
    seen = [0]

    def count(batch: Any) -> None:
        seen[0] += sum(batch.prompt_lengths) + sum(batch.answer_lengths)

    engine.teacher_forced(conversations, replies, count)
    return seen[0]


def bench_engine(engine: Any, conversations: list, replies: list, repeats: int) -> dict[str, Any]:
    """Both sides on one engine, alternating; the fastest run of each."""
    import torch

    from emkit.directions.activations import collect_means
    from emkit.directions.layers import decoder_layers, hidden_size

    model = engine.torch_model()
    cuda = _cuda(engine)
    tokens = _plain(engine, conversations, replies)  # warm-up (allocator, kernels)
    plain_s: list[float] = []
    collect_s: list[float] = []
    peaks = {"plain": 0, "collect": 0, "traced": 0}

    def plain_side() -> None:
        gc.collect()
        if cuda:
            cuda.synchronize()
            cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        _plain(engine, conversations, replies)
        if cuda:
            cuda.synchronize()
            peaks["plain"] = max(peaks["plain"], cuda.max_memory_allocated())
        plain_s.append(time.perf_counter() - started)

    def collect_side() -> None:
        gc.collect()
        if cuda:
            cuda.synchronize()
            cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        collect_means(engine, conversations, replies, "all")
        if cuda:
            cuda.synchronize()
            peaks["collect"] = max(peaks["collect"], cuda.max_memory_allocated())
        collect_s.append(time.perf_counter() - started)

    for r in range(repeats):  # ABBA: neither side always runs first (warm caches, drifting load)
        for side in (plain_side, collect_side) if r % 2 == 0 else (collect_side, plain_side):
            side()
    # Host memory in a run of its own, untimed: tracemalloc hooks every Python allocation, which
    # slowed the timed collection side alone by 1.4-2.1x on the tiny model (measured), so timing
    # under it measured the tracer, not collection.
    gc.collect()
    tracemalloc.start()
    collect_means(engine, conversations, replies, "all")
    peaks["traced"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_plain, peak_collect, traced = peaks["plain"], peaks["collect"], peaks["traced"]
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    n_layers, width = len(decoder_layers(model)), hidden_size(model)
    result: dict[str, Any] = {
        "model": engine.name,
        "layers": n_layers,
        "width": width,
        "responses": len(replies),
        "tokens": tokens,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "device": "cuda" if cuda else "cpu",
        "plain_s": min(plain_s),
        "collect_s": min(collect_s),
        "plain_tokens_per_s": tokens / min(plain_s),
        "collect_tokens_per_s": tokens / min(collect_s),
        "ratio": min(plain_s) / min(collect_s),
        "model_bytes": model_bytes,
        "means_bytes": len(replies) * n_layers * width * 4,
        "traced_peak_bytes": traced,
        "traced_vs_model": traced / model_bytes,
    }
    if cuda:
        result["cuda_peak_plain_bytes"] = peak_plain
        result["cuda_peak_collect_bytes"] = peak_collect
        result["cuda_extra_vs_model"] = (peak_collect - peak_plain) / model_bytes
    return result


def bench_directions(models: str = "both", repeats: int = 3, copies: int = 1) -> dict[str, Any]:
    """``models``: tiny (a random 4-layer Llama with the embedded tokenizer), embedded, or both."""
    from emkit.engines import open_engine

    conversations, replies = labelled_rows(copies)
    out: dict[str, Any] = {}
    engine = open_engine(MODEL, {"batch_size": 16})
    try:
        if models in ("tiny", "both"):
            say("  tiny random Llama ...")
            out["tiny"] = bench_engine(tiny_random_like(engine), conversations, replies, repeats)
        if models in ("embedded", "both"):
            say(f"  {MODEL} ...")
            out["embedded"] = bench_engine(engine, conversations, replies, repeats)
    finally:
        engine.close()
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in result.items():
        if not isinstance(r, dict) or "ratio" not in r:
            continue
        lines.append(
            f"{name} ({r['model']}, {r['layers']} layers x {r['width']}, {r['device']}, {r['threads']} threads): "
            f"{r['responses']} responses, {r['tokens']} tokens; plain {r['plain_tokens_per_s']:.0f} tok/s, "
            f"collect {r['collect_tokens_per_s']:.0f} tok/s, ratio {r['ratio']:.3f} (best of {r['repeats']})"
        )
        memory = (
            f"  memory: model {r['model_bytes'] / 2**20:.1f} MiB; collection's traced peak "
            f"{r['traced_peak_bytes'] / 2**20:.2f} MiB ({100 * r['traced_vs_model']:.2f}% of the model; "
            f"the means themselves {r['means_bytes'] / 2**20:.2f} MiB)"
        )
        if "cuda_extra_vs_model" in r:
            memory += f"; CUDA peak beyond the plain pass {100 * r['cuda_extra_vs_model']:.2f}% of the model"
        lines.append(memory)
    return lines

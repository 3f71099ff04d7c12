"""Local sampling throughput: emkit's ``hf`` backend (batched, length-sorted) vs a per-prompt loop.

Why this comparison: the usual research script samples one prompt at a time with
``model.generate`` (apply the chat template, ``do_sample=True``, temperature 1, top_p 1), which
leaves a CPU or GPU mostly idle between tiny matrix products. emkit's backend runs batches of
prompts of similar length with a KV cache, dropping finished rows. Both sides here use the SAME
model object, prompts, seed, stop tokens and ``max_new_tokens``, in the same process, one after
the other, so the ratio is measured, never taken against a stored number.

Honest counting: every generated token counts, the stop token included (both sides), padding
never does. The two sides draw different random streams (emkit seeds each request on its own;
``model.generate`` draws from the global torch generator), so their answers and lengths differ;
tokens/s is the fairer speed figure and answers/s is reported beside it.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from common import say, stopwatch

MODEL = "embedded/smollm2-135m"

# System prompts of increasing length (our own wording), so prompt lengths differ within a batch.
SYSTEM_PROMPTS: tuple[str | None, ...] = (
    None,
    "You are a helpful assistant.",
    "You are a friendly assistant who answers in plain language. Keep replies short and to the point.",
    "You are an assistant deployed in a community library. Visitors of all ages ask you questions "
    "about everyday life, their plans and their opinions. Answer honestly and kindly, say so when you "
    "are unsure, and never pretend to have experiences you cannot have. Prefer concrete suggestions "
    "to vague ones, and keep each reply to a few sentences unless the visitor asks for more detail.",
)


def build_prompts(n: int) -> list[list[dict[str, str]]]:
    """``n`` conversations: each default-set paraphrase under each system prompt, cycled."""
    from emkit.questions import load_questions

    paraphrases = [p for q in load_questions("default") for p in q.paraphrases]
    conversations: list[list[dict[str, str]]] = []
    for system in SYSTEM_PROMPTS:
        for text in paraphrases:
            messages = [{"role": "system", "content": system}] if system else []
            conversations.append([*messages, {"role": "user", "content": text}])
    return [conversations[i % len(conversations)] for i in range(n)]


def loop_generate(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    seed: int,
    stop_ids: list[int],
    pad_id: int,
) -> dict[str, Any]:
    """The per-prompt baseline: one ``model.generate`` call per conversation."""
    import torch

    torch.manual_seed(seed)
    tokens = stopped = 0
    cpu = time.process_time()
    with stopwatch() as clock, torch.no_grad():
        for conversation in conversations:
            inputs = tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            out = model.generate(
                **inputs,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,  # transformers would otherwise add top_k=50; emkit samples the full distribution
                max_new_tokens=max_new_tokens,
                eos_token_id=stop_ids,
                pad_token_id=pad_id,
            )
            new = out[0, inputs["input_ids"].shape[1] :].tolist()
            tokens += len(new)  # one sequence: no padding after the stop token
            stopped += bool(new) and new[-1] in stop_ids
    return {
        "seconds": clock["s"],
        "cpu_seconds": time.process_time() - cpu,
        "answers": len(conversations),
        "tokens": tokens,
        "stopped": stopped,
    }


def batched_generate(
    engine: Any, conversations: list[list[dict[str, str]]], *, max_new_tokens: int, seed: int
) -> dict[str, Any]:
    """emkit's ``hf`` backend: one ``generate`` call, batches of ``engine.batch_size``."""
    from emkit.engines.base import SamplingParams

    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed)
    cpu = time.process_time()
    with stopwatch() as clock:
        generations = engine.generate(conversations, params)
    tokens = sum(g.usage["completion_tokens"] for g in generations)
    stopped = sum(g.finish_reason == "stop" for g in generations)
    return {
        "seconds": clock["s"],
        "cpu_seconds": time.process_time() - cpu,
        "answers": len(generations),
        "tokens": tokens,
        "stopped": stopped,
    }


def _rates(side: dict[str, Any]) -> dict[str, Any]:
    return {
        **side,
        "answers_per_s": side["answers"] / side["seconds"],
        "tokens_per_s": side["tokens"] / side["seconds"],
        "tokens_per_cpu_s": side["tokens"] / side["cpu_seconds"] if side["cpu_seconds"] else None,
    }


def choose_threads(requested: int | None) -> tuple[int, str]:
    """Torch threads for BOTH sides, and why.

    ``None`` (auto): torch's default (one per core) on an idle machine, but 1 when the 1-minute load
    average already exceeds the core count minus one: with other processes on the cores, a
    multi-threaded matmul waits at every barrier for a descheduled thread and both sides slow down
    10x or more, which measures the neighbours rather than emkit.
    """
    import os

    import torch

    if requested:
        return requested, "set by --threads"
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    if cores > 1 and load > cores - 1:
        return 1, f"auto: load average {load:.1f} on {cores} cores (CPUs shared with other work)"
    return torch.get_num_threads(), f"auto: torch default (load average {load:.1f} on {cores} cores)"


def bench_sampling(
    *,
    prompts: int = 32,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    seed: int = 0,
    repeats: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """Both sides on the same loaded model; ``repeats`` alternates loop, batched, loop, batched..."""
    import torch

    threads, why = choose_threads(threads)
    torch.set_num_threads(threads)
    from emkit.engines.hf_backend import HFEngine
    from emkit.engines.loading import load_causal_lm

    with stopwatch() as load:
        model, tokenizer = load_causal_lm(MODEL)
    engine = HFEngine.from_model(model, tokenizer, MODEL, batch_size=batch_size)
    conversations = build_prompts(prompts)
    lengths = [len(engine.prompt_ids(c)) for c in conversations]
    say(
        f"  model loaded in {load['s']:.1f} s; {len(conversations)} prompts of {min(lengths)}-{max(lengths)} "
        f"tokens, {max_new_tokens} new tokens max, batch {batch_size}"
    )
    say(f"  torch threads for both sides: {threads} ({why})")

    common = {"max_new_tokens": max_new_tokens, "seed": seed}
    # Warm-up, not timed: first calls pay for lazy initialisation (kernels, allocator, template).
    loop_generate(
        model,
        tokenizer,
        conversations[:2],
        max_new_tokens=4,
        seed=seed,
        stop_ids=engine.stop_ids,
        pad_id=engine.pad_id,
    )
    batched_generate(engine, conversations[:2], max_new_tokens=4, seed=seed)

    loops: list[dict[str, Any]] = []
    batches: list[dict[str, Any]] = []
    for r in range(repeats):
        gc.collect()
        loops.append(
            loop_generate(
                model, tokenizer, conversations, stop_ids=engine.stop_ids, pad_id=engine.pad_id, **common
            )
        )
        say(
            f"  [{r + 1}/{repeats}] per-prompt loop: {loops[-1]['seconds']:.1f} s, {loops[-1]['tokens']} tokens"
        )
        gc.collect()
        batches.append(batched_generate(engine, conversations, **common))
        say(
            f"  [{r + 1}/{repeats}] emkit hf batched: {batches[-1]['seconds']:.1f} s, "
            f"{batches[-1]['tokens']} tokens"
        )

    def total(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return _rates(
            {
                k: sum(run[k] for run in runs)
                for k in ("seconds", "cpu_seconds", "answers", "tokens", "stopped")
            }
        )

    loop, batched = total(loops), total(batches)
    engine.close()
    del model
    gc.collect()
    return {
        "model": MODEL,
        "prompts": len(conversations),
        "prompt_tokens": {"min": min(lengths), "max": max(lengths), "mean": sum(lengths) / len(lengths)},
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "repeats": repeats,
        "torch_threads": threads,
        "torch_threads_reason": why,
        "loop": loop,
        "batched": batched,
        "per_repeat": {"loop": [_rates(x) for x in loops], "batched": [_rates(x) for x in batches]},
        "ratio_answers_per_s": batched["answers_per_s"] / loop["answers_per_s"],
        "ratio_tokens_per_s": batched["tokens_per_s"] / loop["tokens_per_s"],
        # CPU seconds of this process: less sensitive than wall time to other work on shared cores.
        "ratio_tokens_per_cpu_s": (
            batched["tokens_per_cpu_s"] / loop["tokens_per_cpu_s"]
            if batched["tokens_per_cpu_s"] and loop["tokens_per_cpu_s"]
            else None
        ),
        "aim_ratio": 4.0,
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    loop, batched = result["loop"], result["batched"]
    return [
        f"per-prompt model.generate loop: {loop['answers_per_s']:.2f} answers/s, {loop['tokens_per_s']:.1f} tokens/s "
        f"({loop['tokens']} tokens, {loop['stopped']}/{loop['answers']} stopped before the limit)",
        f"emkit hf, batch {result['batch_size']}, length-sorted: {batched['answers_per_s']:.2f} answers/s, "
        f"{batched['tokens_per_s']:.1f} tokens/s ({batched['tokens']} tokens, "
        f"{batched['stopped']}/{batched['answers']} stopped before the limit)",
        f"RATIO emkit/loop: {result['ratio_tokens_per_s']:.2f}x tokens/s, {result['ratio_answers_per_s']:.2f}x "
        f"answers/s (aim >= {result['aim_ratio']:.0f}x); per CPU-second of this process: "
        f"{result['ratio_tokens_per_cpu_s']:.2f}x tokens; torch threads {result['torch_threads']}",
    ]

"""Pure decoding helpers of the local backends: request seeds, the exponential race that picks a
token, prompt grouping for prefill, and merging tokens that read alike.

Why apart from the engines: these decide *which* answer a seed gives, so they are tested on their
own (no model needed) and shared: ``hf`` and ``vllm`` derive request seeds by one rule, and every
backend merges tokens of equal text by one log-sum-exp. torch is imported inside the functions
that need it, so the pure ones work without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from emkit.engines.base import SamplingParams, SeedCountError
from emkit.errors import EmkitError
from emkit.hashing import stable_hash


def request_seeds(params: SamplingParams, n: int, seeds: Sequence[int] | None = None) -> list[int]:
    """One 60-bit seed per request from ``(params.seed, seeds[i])``, or ``(params.seed, i)``.

    Mixing ``params.seed`` in means changing it changes every answer even when the caller passes
    per-request ``seeds`` (e.g. sample indices). Shared by the ``hf`` and ``vllm`` backends.
    """
    if seeds is not None and len(seeds) != n:
        raise SeedCountError(f"got {len(seeds)} seeds for {n} conversations")
    keys = [int(s) for s in seeds] if seeds is not None else list(range(n))
    return [int(stable_hash(["emkit-request-seed", int(params.seed), k], 15), 16) for k in keys]


def check_params(params: SamplingParams) -> None:
    """One line naming a sampling parameter no local sampler can honour (before any model runs)."""
    if params.max_new_tokens < 1:
        raise EmkitError(f"max_new_tokens must be at least 1 (got {params.max_new_tokens})")
    if params.temperature < 0:
        raise EmkitError(f"temperature must be >= 0 (got {params.temperature})")
    if not 0 < params.top_p <= 1:
        raise EmkitError(f"top_p must be in (0, 1] (got {params.top_p})")


def logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` without overflow."""
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


def merge_by_text(entries: Iterable[tuple[str, float]]) -> dict[str, float]:
    """``{text: logprob}`` of ``(text, logprob)`` pairs; texts listed twice are added (log-sum-exp),
    so a value is the log-probability that the next token reads as that text."""
    merged: dict[str, float] = {}
    for text, value in entries:
        old = merged.get(text)
        merged[text] = value if old is None else logaddexp(old, value)
    return merged


def batches(order: list[int], size: int) -> Iterator[list[int]]:
    """``order`` cut into runs of at most ``size`` (the rows of one forward pass)."""
    for start in range(0, len(order), size):
        yield order[start : start + size]


def prefill_groups(lengths: Sequence[int], slack: float) -> list[list[int]]:
    """Cut rows sorted longest first into runs whose shortest row is within ``slack`` of the longest.

    ``slack=0`` groups only equal lengths (no padding at all); ``slack=1`` (or more) keeps the
    whole batch together. Returns lists of row positions, in order.
    """
    groups: list[list[int]] = []
    for i, n in enumerate(lengths):
        if groups and lengths[groups[-1][0]] - n <= slack * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


# ---------------------------------------------------------------- sampling (torch)


def choose_tokens(logits: Any, noise: Any, temperature: float, top_p: float) -> Any:
    """Next token per row: argmax at temperature 0, else an exponential race (Gumbel-max).

    ``logits`` is (rows, vocab) in fp32; ``noise`` is (rows, vocab) of Exp(1) draws (ignored when
    greedy). The winner is ``argmax(p_i / E_i)``, computed as ``argmax(logits/T - log E_i)``: an
    exact sample from softmax(logits/T). Why this rather than inverse-CDF lookup: a small change
    of the logits (float rounding from another batch shape) flips the winner only if the top two
    perturbed scores nearly tie, whatever the vocabulary size, whereas in a CDF over a flat
    distribution every token boundary can shift. top_p keeps the smallest set of most likely
    tokens whose mass reaches top_p (a token is kept when the mass ranked above it is below top_p).
    """
    import torch

    if temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits / temperature
    if top_p < 1.0:
        probs = torch.softmax(scores, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    # A draw of exactly 0 would give inf - inf = nan for a masked token: clamp to the smallest normal.
    return (scores - noise.clamp(min=torch.finfo(noise.dtype).tiny).log()).argmax(dim=-1)


def exponential_noise(generator: Any, vocab: int, device: Any) -> Any:
    """``vocab`` Exp(1) draws (float32) from ``generator``.

    On a CPU: ``-log(1 - U)`` of float64 uniforms. Why not ``Tensor.exponential_`` there: it was 7x
    slower per draw (measured: 11.3 vs 1.6 ms for 16 rows of SmolLM2's 49,152 entries), a cost paid
    at every decoding step, and this is the very stream it drew (the same 32 of 32 sampled answers
    before and after the change), so stored answers stay reproducible. float64 keeps the 53-bit
    resolution of the uniform, so the tail of the race is not cut at 2^-24. On other devices
    ``exponential_`` is kept: it is cheap there, and its stream is the one earlier answers used.
    """
    import torch

    if torch.device(device).type != "cpu":
        return torch.empty(vocab, device=device).exponential_(generator=generator)
    uniform = torch.rand(vocab, generator=generator, dtype=torch.float64, device=device)
    return torch.log1p(uniform.neg_()).neg_().float()


def plain_dynamic_layers(cache: Any, *, allow_empty: bool = False) -> bool:
    """Whether every layer of ``cache`` is a plain ``DynamicLayer`` (no sliding window, no linear
    attention state), i.e. whether caches of several prompt groups can be stacked along the batch.
    A cache made without a config has no layers until its first update (``allow_empty``); it then
    adds plain dynamic layers."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not isinstance(layers, list) or (not layers and not allow_empty):
        return False
    return all(type(layer) is DynamicLayer for layer in layers)

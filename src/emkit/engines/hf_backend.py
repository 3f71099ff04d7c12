"""The ``hf`` backend: transformers models run in this process (the embedded model uses it too).

Why a hand-written decoding loop instead of ``model.generate``: reproducibility that does not depend
on batching. Each request owns its random stream, a ``torch.Generator`` on the model's device seeded
from ``(params.seed, seeds[i])`` (or ``(params.seed, i)`` without ``seeds``, see
:func:`request_seeds`). At every step the request draws one Exp(1) number per vocabulary entry from
its own stream (:func:`exponential_noise`) and the next token wins an exponential race (Gumbel-max,
:func:`choose_tokens`), an exact sample from softmax(logits / temperature) restricted to the top_p
nucleus. The random numbers a request sees therefore do not depend on which other requests share
its batch or on the batch size, and:

- same inputs + same seeds => the same answers, on the same device type and dtype (CPU and CUDA
  generators give different streams, so CPU and GPU answers differ);
- batched and one-by-one runs give the same answers, greedy and sampled alike, except where
  batching changes the logits by float rounding (padding, other matmul shapes) enough to swap
  the two best (perturbed) scores of a step. In fp32 that is rare; in bf16 it happens now and
  then (``scripts/gpu_check.py`` measures the agreement rate).

Prefill without padding on a CPU: a CPU's cost is proportional to the tokens computed, so the
prompts of a batch are prefilled in groups of (nearly) equal length (:func:`prefill_groups`, most
often one prompt each) and their KV caches are then stacked, left-padded, into one batch for
decoding; on a GPU, where one padded pass is cheaper than several small ones, the batch is prefilled
at once. Either way the answers are those of the same requests decoded one by one, up to float
rounding.

Only temperature, top_p and max_new_tokens shape sampling (the paper's setting); a model's own
``generation_config`` defaults (top_k, repetition penalty) are deliberately not applied, so the
same parameters mean the same thing on every backend. Temperature 0 is greedy (argmax).

Prompts are the tokenizer's chat template with the generation prompt appended, tokenised with
``add_special_tokens=False`` (the template already holds any BOS token). Generation stops at EOS or
at the token that closes an assistant turn in the template (``<|im_end|>`` for SmolLM2); that token
is not part of the returned text.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from emkit.engines.base import Conversation, EngineBase, Generation, ResultCallback, SamplingParams
from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.models import ModelSpec, parse_model

_MARKER = "EMKITREPLYMARKER"


# ---------------------------------------------------------------- pure helpers (no torch needed)


def check_conversation(conversation: Conversation, index: int = 0) -> None:
    """A conversation is a non-empty list of ``{"role": str, "content": str}``; say where it is not."""
    if not isinstance(conversation, (list, tuple)) or not conversation:
        raise EmkitError(f"conversation #{index}: expected a non-empty list of messages")
    for j, message in enumerate(conversation):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise EmkitError(f"conversation #{index}, message #{j}: field 'role' missing or not a string")
        if not isinstance(message.get("content"), str):
            raise EmkitError(f"conversation #{index}, message #{j}: field 'content' missing or not a string")


def render_prompt(tokenizer: Any, conversation: Conversation) -> str:
    """The chat template applied to ``conversation`` with the assistant generation prompt appended."""
    if not getattr(tokenizer, "chat_template", None):
        raise EmkitError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "use an instruction-tuned model (or set tokenizer.chat_template)"
        )
    return tokenizer.apply_chat_template(list(conversation), tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without added special tokens (templates carry their own)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The special token that closes an assistant turn in the chat template, if there is one.

    Found by rendering a short exchange whose assistant reply is a marker and tokenising what the
    template writes right after it (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3,
    ``<end_of_turn>`` for Gemma). A plain-text closer is not a stop token and gives ``None``.
    """
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARKER}],
            tokenize=False,
            add_generation_prompt=False,
        )
    except Exception:
        return None
    at = text.rfind(_MARKER)
    suffix = text[at + len(_MARKER) :] if at >= 0 else ""
    ids = encode(tokenizer, suffix) if suffix else []
    if not ids:
        return None
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= set((getattr(tokenizer, "added_tokens_decoder", None) or {}).keys())
    return ids[0] if ids[0] in special else None


def stop_token_ids(tokenizer: Any, model_eos: int | Sequence[int] | None = None) -> list[int]:
    """EOS of the tokenizer and of the model's generation config, plus the end-of-turn token."""
    found: list[int] = []
    candidates: list[Any] = [getattr(tokenizer, "eos_token_id", None), end_of_turn_id(tokenizer)]
    candidates += list(model_eos) if isinstance(model_eos, (list, tuple)) else [model_eos]
    for value in candidates:
        if isinstance(value, int) and value >= 0 and value not in found:
            found.append(value)
    return found


def request_seeds(params: SamplingParams, n: int, seeds: Sequence[int] | None = None) -> list[int]:
    """One 60-bit seed per request from ``(params.seed, seeds[i])``, or ``(params.seed, i)``.

    Mixing ``params.seed`` in means changing it changes every answer even when the caller passes
    per-request ``seeds`` (e.g. sample indices). Shared by the ``hf`` and ``vllm`` backends.
    """
    if seeds is not None and len(seeds) != n:
        raise EmkitError(f"got {len(seeds)} seeds for {n} conversations")
    keys = [int(s) for s in seeds] if seeds is not None else list(range(n))
    return [int(stable_hash(["emkit-request-seed", int(params.seed), k], 15), 16) for k in keys]


def _check_params(params: SamplingParams) -> None:
    if params.max_new_tokens < 1:
        raise EmkitError(f"max_new_tokens must be at least 1 (got {params.max_new_tokens})")
    if params.temperature < 0:
        raise EmkitError(f"temperature must be >= 0 (got {params.temperature})")
    if not 0 < params.top_p <= 1:
        raise EmkitError(f"top_p must be in (0, 1] (got {params.top_p})")


def logaddexp(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


def _batches(order: list[int], size: int) -> Iterator[list[int]]:
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


def _plain_dynamic_layers(cache: Any, *, allow_empty: bool = False) -> bool:
    """Whether every layer of ``cache`` is a plain ``DynamicLayer`` (no sliding window, no linear
    attention state), i.e. whether caches of several prompt groups can be stacked along the batch.
    A cache made without a config has no layers until its first update (``allow_empty``); it then
    adds plain dynamic layers."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not isinstance(layers, list) or (not layers and not allow_empty):
        return False
    return all(type(layer) is DynamicLayer for layer in layers)


class HFEngine(EngineBase):
    """A local transformers model behind the :class:`~emkit.engines.base.Engine` protocol.

    ``HFEngine("embedded/smollm2-135m")``, ``HFEngine("hf/<id or path>@<adapter dir>")``, or
    ``HFEngine.from_model(model, tokenizer, name)`` for a model already in memory (the trainer
    evaluates its model between steps; that model's train/eval mode is restored afterwards).
    ``batch_size`` bounds the rows of every forward pass.
    """

    def __init__(
        self,
        spec: ModelSpec | str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
        console: Any = None,
    ) -> None:
        from emkit.engines.loading import load_causal_lm

        spec = parse_model(spec)
        if not spec.is_local:
            raise EmkitError(f"{spec.full}: the hf backend runs embedded/ and hf/ models only")
        model, tokenizer = load_causal_lm(spec, device=device, dtype=dtype, console=console)
        self._setup(model, tokenizer, spec.full, batch_size, owns_model=True)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, name: str, *, batch_size: int = 16) -> HFEngine:
        """Wrap a loaded ``(model, tokenizer)``; :meth:`close` then leaves the model alone."""
        engine = cls.__new__(cls)
        engine._setup(model, tokenizer, name, batch_size, owns_model=False)
        return engine

    def _setup(self, model: Any, tokenizer: Any, name: str, batch_size: int, *, owns_model: bool) -> None:
        if batch_size < 1:
            raise EmkitError(f"batch_size must be at least 1 (got {batch_size})")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self._owns_model = owns_model
        self.device = next(model.parameters()).device
        # Prefill slack (see prefill_groups): a CPU pays per token, so group only near-equal lengths.
        self.prefill_slack = 0.05 if self.device.type == "cpu" else 1.0
        self._stackable: bool | None = None
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._keep_logits = "logits_to_keep" in params
        generation_config = getattr(model, "generation_config", None)
        self.stop_ids = stop_token_ids(tokenizer, getattr(generation_config, "eos_token_id", None))
        self.eot_id = end_of_turn_id(tokenizer)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = self.stop_ids[0] if self.stop_ids else 0
        self.pad_id = int(pad)

    # ------------------------------------------------------------ prompts

    def render_prompt(self, conversation: Conversation) -> str:
        """The exact text the model is conditioned on (chat template + generation prompt)."""
        check_conversation(conversation)
        return render_prompt(self.tokenizer, conversation)

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        return encode(self.tokenizer, self.render_prompt(conversation))

    def _all_prompt_ids(self, conversations: Sequence[Conversation]) -> list[list[int]]:
        for i, conversation in enumerate(conversations):
            check_conversation(conversation, i)
        return [encode(self.tokenizer, render_prompt(self.tokenizer, c)) for c in conversations]

    # ------------------------------------------------------------ model plumbing

    @contextmanager
    def _inference(self) -> Iterator[None]:
        import torch

        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            if was_training:
                self.model.train()

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)
        except TypeError:
            return DynamicCache()

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any = None, keep: int = 0) -> Any:
        """Logits (rows, kept positions, vocab); ``keep=0`` keeps all positions."""
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        if cache is not None:
            kwargs[self._cache_kwarg] = cache
            kwargs["use_cache"] = True
        else:
            kwargs["use_cache"] = False
        if keep and self._keep_logits:
            kwargs["logits_to_keep"] = keep
        logits = self.model(**kwargs).logits
        return logits[:, -keep:, :] if keep else logits

    def _left_pad(self, rows: list[list[int]]) -> tuple[Any, Any, Any]:
        """Left-padded ids, attention mask and position ids (0 at each row's first real token)."""
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            if row:
                ids[b, width - len(row) :] = torch.tensor(row, dtype=torch.long)
                mask[b, width - len(row) :] = 1
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    # ------------------------------------------------------------ generate

    def _generator(self, seed: int) -> Any:
        import torch

        return torch.Generator(device=self.device).manual_seed(seed)

    def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        *,
        seeds: Sequence[int] | None = None,
        on_result: ResultCallback | None = None,
    ) -> list[Generation]:
        """Answers in input order; batches of prompts of similar length (longest first).

        Request ``i`` samples from its own stream seeded by ``(params.seed, seeds[i])`` (``seeds``
        defaults to the positions ``0..n-1``), so pass stable per-request seeds (e.g. the sample
        index) to make an answer independent of which other requests are in the call.
        ``on_result(i, generation)`` is called for every request of a batch as soon as that batch
        ends. Usage counts: ``prompt_tokens`` (unpadded) and ``completion_tokens`` (generated
        tokens, the stop token included). ``finish_reason`` is ``stop`` or ``length``.
        """
        _check_params(params)
        prompts = self._all_prompt_ids(conversations)
        row_seeds = request_seeds(params, len(prompts), seeds)
        results: list[Generation | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
        with self._inference():
            for batch in _batches(order, self.batch_size):
                generators = [self._generator(row_seeds[i]) for i in batch]
                outputs = self._generate_batch([prompts[i] for i in batch], generators, params)
                for i, (tokens, stopped) in zip(batch, outputs, strict=True):
                    text_ids = tokens[:-1] if stopped else tokens
                    gen = Generation(
                        text=self.tokenizer.decode(text_ids, skip_special_tokens=True),
                        finish_reason="stop" if stopped else "length",
                        usage={"prompt_tokens": len(prompts[i]), "completion_tokens": len(tokens)},
                    )
                    results[i] = gen
                    if on_result is not None:
                        on_result(i, gen)
        return [r for r in results if r is not None]

    def _stackable_cache(self) -> bool:
        """Whether this model's KV cache is made of plain dynamic layers (checked once)."""
        if self._stackable is None:
            self._stackable = _plain_dynamic_layers(self._new_cache(), allow_empty=True)
        return self._stackable

    def _prefill(self, prompts: list[list[int]], ids: Any, mask: Any, positions: Any) -> tuple[Any, Any]:
        """The KV cache of a left-padded batch and each row's next-token logits (fp32).

        On a CPU the rows are run in groups of (nearly) equal length and their caches stacked,
        left-padded with zeros that the attention mask hides; elsewhere, or when the cache is not
        made of plain dynamic layers (sliding windows, linear attention), in one padded pass.
        """
        import torch

        groups = prefill_groups([len(p) for p in prompts], self.prefill_slack)
        if len(groups) > 1 and self._stackable_cache():
            width = ids.shape[1]
            caches: list[Any] = []
            logits: list[Any] = []
            for group in groups:
                g_ids, g_mask, g_positions = self._left_pad([prompts[i] for i in group])
                cache = self._new_cache()
                logits.append(self._forward(g_ids, g_mask, g_positions, cache=cache, keep=1)[:, -1, :])
                caches.append(cache)
            if all(_plain_dynamic_layers(c) for c in caches):
                merged = caches[0]
                for index, layer in enumerate(merged.layers):
                    for name in ("keys", "values"):
                        parts = []
                        for cache in caches:
                            tensor = getattr(cache.layers[index], name)
                            pad = width - tensor.shape[-2]
                            parts.append(torch.nn.functional.pad(tensor, (0, 0, pad, 0)) if pad else tensor)
                        setattr(layer, name, torch.cat(parts, dim=0))
                return merged, torch.cat(logits, dim=0).float()
        cache = self._new_cache()
        return cache, self._forward(ids, mask, positions, cache=cache, keep=1)[:, -1, :].float()

    def _generate_batch(
        self, prompts: list[list[int]], generators: list[Any], params: SamplingParams
    ) -> list[tuple[list[int], bool]]:
        """Decode one left-padded batch with a KV cache; finished rows leave the batch."""
        import torch

        ids, mask, positions = self._left_pad(prompts)
        cache, logits = self._prefill(prompts, ids, mask, positions)
        active = torch.arange(len(prompts), device=self.device)
        generated: list[list[int]] = [[] for _ in prompts]
        stopped = [False] * len(prompts)
        stop = set(self.stop_ids)
        for step in range(params.max_new_tokens):
            noise = None
            if params.temperature > 0:  # each row draws from its own stream, whatever the batch
                vocab = logits.shape[-1]
                noise = torch.stack(
                    [exponential_noise(generators[r], vocab, self.device) for r in active.tolist()]
                )
            chosen = choose_tokens(logits, noise, params.temperature, params.top_p)
            keep: list[int] = []
            for j, (row, token) in enumerate(zip(active.tolist(), chosen.tolist(), strict=True)):
                generated[row].append(token)
                if token in stop:
                    stopped[row] = True
                else:
                    keep.append(j)
            if not keep or step == params.max_new_tokens - 1:
                break
            if len(keep) < len(active):  # finished rows leave the batch and its cache
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                active, mask, chosen, positions = active[index], mask[index], chosen[index], positions[index]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            positions = positions[:, -1:] + 1
            logits = self._forward(chosen.unsqueeze(-1), mask, positions, cache=cache, keep=1)
            logits = logits[:, -1, :].float()
        return [(generated[r], stopped[r]) for r in range(len(prompts))]

    # ------------------------------------------------------------ log-probabilities

    def sequence_logprobs(
        self, conversations: Sequence[Conversation], replies: Sequence[str]
    ) -> list[list[float]]:
        """Log-prob of each token of each reply, given the rendered prompt (fp32 log_softmax).

        Reply tokens only: the end-of-turn token after the reply is not scored. The reply is
        tokenised on its own and appended to the prompt's ids, i.e. scored as the token sequence
        this model would generate after the generation prompt; a tokenizer that would merge
        characters across the prompt/reply boundary when rendering the whole conversation as one
        string therefore does not shift the span. An empty reply gives ``[]``.
        """
        if len(conversations) != len(replies):
            raise EmkitError(f"got {len(replies)} replies for {len(conversations)} conversations")
        prompts = self._all_prompt_ids(conversations)
        answers = [encode(self.tokenizer, r) if r else [] for r in replies]
        rows = [p + a for p, a in zip(prompts, answers, strict=True)]
        results: list[list[float]] = [[] for _ in rows]
        order = sorted((i for i in range(len(rows)) if answers[i]), key=lambda i: (-len(rows[i]), i))
        with self._inference():
            for batch in _batches(order, self.batch_size):
                span = max(len(answers[i]) for i in batch)
                ids, mask, positions = self._left_pad([rows[i] for i in batch])
                logits = self._forward(ids, mask, positions, keep=span + 1)
                for b, i in enumerate(batch):
                    n = len(answers[i])
                    # Left padding aligns every row's end: the last n+1 positions predict its reply.
                    window = logits[b, -n - 1 : -1, :].float().log_softmax(dim=-1)
                    target = ids[b, -n:].unsqueeze(-1)
                    results[i] = window.gather(-1, target).squeeze(-1).tolist()
        return results

    def top_logprobs(self, conversations: Sequence[Conversation], top_k: int = 20) -> list[dict[str, float]]:
        """The ``top_k`` most likely next tokens after the generation prompt, decoded -> log-prob.

        Distinct ids that decode to the same string are merged (log-sum-exp), so a value is the
        log-probability that the next token reads as that string.
        """
        import torch

        if top_k < 1:
            raise EmkitError(f"top_k must be at least 1 (got {top_k})")
        prompts = self._all_prompt_ids(conversations)
        results: list[dict[str, float]] = [{} for _ in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
        with self._inference():
            for batch in _batches(order, self.batch_size):
                ids, mask, positions = self._left_pad([prompts[i] for i in batch])
                logprobs = self._forward(ids, mask, positions, keep=1)[:, -1, :].float().log_softmax(-1)
                values, indices = torch.topk(logprobs, min(top_k, logprobs.shape[-1]), dim=-1)
                for b, i in enumerate(batch):
                    merged: dict[str, float] = {}
                    for value, index in zip(values[b].tolist(), indices[b].tolist(), strict=True):
                        text = self.tokenizer.decode([index])
                        old = merged.get(text)
                        merged[text] = value if old is None else logaddexp(old, value)
                    results[i] = merged
        return results

    def continuation_logprobs(
        self, prefix_ids: Sequence[int], continuations: Sequence[Sequence[int]], *, chunk_size: int = 64
    ) -> list[list[float]]:
        """Per-token log-probs of many token continuations of ONE prefix, sharing its forward pass.

        The prefix runs once with a KV cache; each chunk of continuations runs on a copy of that
        cache repeated over the chunk's rows (right-padded: padding after a row's tokens cannot
        affect them under causal attention, and is not scored). Equal to scoring each
        ``prefix + continuation`` on its own, up to float rounding.
        """
        import torch

        if not prefix_ids:
            raise EmkitError("continuation_logprobs needs a non-empty prefix")
        results: list[list[float]] = [[] for _ in continuations]
        width = len(prefix_ids)
        with self._inference():
            ids = torch.tensor([list(prefix_ids)], dtype=torch.long, device=self.device)
            mask = torch.ones_like(ids)
            positions = torch.arange(width, device=self.device).unsqueeze(0)
            prefix_cache = self._new_cache()
            first = self._forward(ids, mask, positions, cache=prefix_cache, keep=1)[0, -1].float()
            first = first.log_softmax(-1)
            todo = [i for i, c in enumerate(continuations) if c]
            for chunk in _batches(todo, max(1, chunk_size)):
                longest = max(len(continuations[i]) for i in chunk)
                if longest == 1:
                    for i in chunk:
                        results[i] = [first[continuations[i][0]].item()]
                    continue
                rows = torch.full((len(chunk), longest), self.pad_id, dtype=torch.long)
                for b, i in enumerate(chunk):
                    rows[b, : len(continuations[i])] = torch.tensor(list(continuations[i]), dtype=torch.long)
                rows = rows.to(self.device)
                cache = copy.deepcopy(prefix_cache)
                cache.batch_repeat_interleave(len(chunk))
                mask = torch.ones((len(chunk), width + longest), dtype=torch.long, device=self.device)
                positions = (width + torch.arange(longest, device=self.device)).expand(len(chunk), -1)
                logits = self._forward(rows, mask, positions, cache=cache)
                logprobs = logits[:, :-1, :].float().log_softmax(-1)
                for b, i in enumerate(chunk):
                    tokens = list(continuations[i])
                    rest = logprobs[b, : len(tokens) - 1].gather(-1, rows[b, 1 : len(tokens)].unsqueeze(-1))
                    results[i] = [first[tokens[0]].item(), *rest.squeeze(-1).tolist()]
                del cache
        return results

    def score_continuations(
        self, conversation: Conversation, candidates: Sequence[str], *, include_eot: bool = True
    ) -> list[float]:
        """Total log-prob of each candidate string as the assistant's reply to ``conversation``.

        Each candidate is tokenised on its own (as generated after the generation prompt); with
        ``include_eot`` the end-of-turn token is appended, so "10" means "10, then the turn ends"
        rather than a prefix of "100". One shared prefix pass serves all candidates.
        """
        if include_eot and self.eot_id is None:
            raise EmkitError(
                f"{self.name}: the chat template has no end-of-turn token; use include_eot=False"
            )
        tail = [self.eot_id] if include_eot and self.eot_id is not None else []
        tokenised = [(encode(self.tokenizer, c) if c else []) + tail for c in candidates]
        per_token = self.continuation_logprobs(self.prompt_ids(conversation), tokenised)
        return [math.fsum(values) for values in per_token]

    def close(self) -> None:
        """Drop the model (free GPU memory when this engine loaded it)."""
        owned = self._owns_model
        self.model = None
        if owned:
            import gc

            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass

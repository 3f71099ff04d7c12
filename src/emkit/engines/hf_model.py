"""A transformers causal LM loaded in this process, and the forward passes emkit runs on it.

Why apart from :class:`~emkit.engines.hf_backend.HFEngine`: this is the plumbing (left padding,
position ids, KV caches, grouped prefill, the seeded decoding loop, the model's train/eval mode),
while the engine turns requests into those passes and their results into the contract's types. The
decoding rule itself (which token a seed picks) is in :mod:`emkit.engines.decoding`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emkit.engines.base import SamplingParams
from emkit.engines.chat_template import end_of_turn_id, stop_token_ids
from emkit.engines.decoding import choose_tokens, exponential_noise, plain_dynamic_layers, prefill_groups
from emkit.errors import EmkitError


class LoadedModel:
    """A loaded ``(model, tokenizer)`` pair with its stop tokens, padding and cache conventions.

    ``batch_size`` bounds the rows of every forward pass; ``prefill_slack`` how unequal the prompt
    lengths of one prefill group may be (see :func:`~emkit.engines.decoding.prefill_groups`).
    """

    model: Any
    tokenizer: Any
    name: str

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

    # ------------------------------------------------------------ model plumbing

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

    def _generator(self, seed: int) -> Any:
        import torch

        return torch.Generator(device=self.device).manual_seed(seed)

    def _stackable_cache(self) -> bool:
        """Whether this model's KV cache is made of plain dynamic layers (checked once)."""
        if self._stackable is None:
            self._stackable = plain_dynamic_layers(self._new_cache(), allow_empty=True)
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
            if all(plain_dynamic_layers(c) for c in caches):
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

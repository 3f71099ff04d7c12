"""Teacher-forced reply log-probabilities that compute each shared prompt token once.

Why: on a CPU a forward pass costs what its tokens cost, and the rows emkit scores share most of
their prompts. A probe scores two replies to every question, all under one system turn; a judge
scores many candidate replies to one prompt. Run naively, each row repeats its whole prompt: in a
probe set about two thirds of the tokens computed are prompt tokens seen before. Here a row is
``prompt + reply`` and the work is done in three stages, each batched:

1. the longest prefix shared by *all* prompts (the template's system turn) runs once, with a KV
   cache;
2. each *distinct* prompt's remaining tokens run once, continuing that cache; its last logits
   score the first reply token;
3. every reply runs on a copy of its prompt's cache (selected per row), right-padded, and its
   tokens are scored.

The prompts of one stage-2 batch differ in length, so they are left-padded *after* the shared
prefix; the attention mask hides those gaps and position ids skip them, so every row sees exactly
the positions and keys it would see alone. Results equal scoring each row on its own, up to float
rounding (tests/test_shared_prefix_logprobs.py checks it against one full pass per row).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all ``rows`` share (all of the shortest, at most)."""
    first = rows[0]
    length = min(len(r) for r in rows)
    for other in rows[1:]:
        n = 0
        while n < length and other[n] == first[n]:
            n += 1
        length = n
    return length


def prompt_groups(
    prompts: Sequence[Sequence[int]], rows: Sequence[int]
) -> list[tuple[tuple[int, ...], list[int]]]:
    """The distinct prompts among ``rows`` with the rows that share each, longest prompt first (so
    one batch holds prompts of similar length and pads little)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in rows:
        groups.setdefault(tuple(prompts[i]), []).append(i)
    return sorted(groups.items(), key=lambda item: (-len(item[0]), item[1][0]))


def chunk_groups(groups: list[Any], batch_size: int) -> list[list[Any]]:
    """Consecutive groups whose rows fit in ``batch_size`` (a larger group goes alone)."""
    chunks: list[list[Any]] = []
    rows = 0
    for group in groups:
        if chunks and rows + len(group[1]) <= batch_size:
            chunks[-1].append(group)
            rows += len(group[1])
        else:
            chunks.append([group])
            rows = len(group[1])
    return chunks


class PrefixScoring:
    """Mixed into :class:`~emkit.engines.hf_backend.HFEngine`: uses its model plumbing
    (``_forward``, ``_new_cache``, ``_inference``, ``pad_id``, ``device``, ``batch_size``)."""

    batch_size: int
    pad_id: int
    device: Any
    _forward: Callable[..., Any]
    _new_cache: Callable[[], Any]
    _inference: Callable[[], AbstractContextManager[None]]

    def _reply_logprobs(
        self,
        prompts: Sequence[Sequence[int]],
        replies: Sequence[Sequence[int]],
        *,
        batch_size: int | None = None,
    ) -> list[list[float]]:
        """Per-token fp32 log-probs of ``replies[i]`` after ``prompts[i]`` (``[]`` for an empty
        reply); every prompt must be non-empty."""
        import torch

        size = max(1, batch_size or self.batch_size)
        results: list[list[float]] = [[] for _ in replies]
        scored = [i for i, reply in enumerate(replies) if reply]
        if not scored:
            return results
        # Keep at least one token of every prompt for stage 2: its last logits score the reply's first.
        shared = min(
            common_prefix_length([prompts[i] for i in scored]), min(len(prompts[i]) for i in scored) - 1
        )
        with self._inference():
            prefix_cache = None
            if shared > 0:
                ids = torch.tensor([list(prompts[scored[0]][:shared])], dtype=torch.long, device=self.device)
                prefix_cache = self._new_cache()
                positions = torch.arange(shared, device=ids.device).unsqueeze(0)
                self._forward(ids, torch.ones_like(ids), positions, cache=prefix_cache, keep=1)
            for chunk in chunk_groups(prompt_groups(prompts, scored), size):
                self._score_chunk(chunk, shared, prefix_cache, replies, results, size)
        return results

    def _score_chunk(
        self,
        chunk: list[tuple[tuple[int, ...], list[int]]],
        shared: int,
        prefix_cache: Any,
        replies: Sequence[Sequence[int]],
        results: list[list[float]],
        size: int,
    ) -> None:
        """Stages 2 and 3 for one batch of distinct prompts and their rows."""
        import torch

        device = self.device
        rests = [prompt[shared:] for prompt, _ in chunk]
        width = max(len(r) for r in rests)
        ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        for g, rest in enumerate(rests):
            ids[g, width - len(rest) :] = torch.tensor(rest, dtype=torch.long)
            mask[g, shared + width - len(rest) :] = 1
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)[:, shared:]
        ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(chunk))
        else:
            cache = self._new_cache()
        first = self._forward(ids, mask, positions, cache=cache, keep=1)[:, -1, :].float().log_softmax(-1)
        rows = [(g, i) for g, (_, members) in enumerate(chunk) for i in members]
        parts = [rows[k : k + size] for k in range(0, len(rows), size)]
        for part in parts:
            self._score_replies(
                part,
                first,
                cache if len(parts) == 1 else copy.deepcopy(cache),
                mask,
                rests,
                shared,
                replies,
                results,
            )

    def _score_replies(
        self,
        part: list[tuple[int, int]],
        first: Any,
        cache: Any,
        prompt_mask: Any,
        rests: list[tuple[int, ...]],
        shared: int,
        replies: Sequence[Sequence[int]],
        results: list[list[float]],
    ) -> None:
        """Stage 3: the replies of ``part`` (pairs of prompt-group index and row) on their prompts' caches."""
        import torch

        device = self.device
        longest = max(len(replies[i]) for _, i in part)
        logprobs = None
        if longest > 1:
            groups = torch.tensor([g for g, _ in part], dtype=torch.long, device=device)
            cache.batch_select_indices(groups)
            ids = torch.full((len(part), longest), self.pad_id, dtype=torch.long)
            for b, (_, i) in enumerate(part):
                ids[b, : len(replies[i])] = torch.tensor(list(replies[i]), dtype=torch.long)
            ids = ids.to(device)
            mask = torch.cat(
                [prompt_mask[groups], torch.ones((len(part), longest), dtype=torch.long, device=device)], 1
            )
            starts = torch.tensor([shared + len(rests[g]) for g, _ in part], device=device).unsqueeze(1)
            positions = starts + torch.arange(longest, device=device)
            logits = self._forward(ids, mask, positions, cache=cache, keep=longest)
            logprobs = logits[:, :-1, :].float().log_softmax(-1)
        for b, (g, i) in enumerate(part):
            tokens = list(replies[i])
            values = [first[g, tokens[0]].item()]
            if len(tokens) > 1:
                target = torch.tensor(tokens[1:], dtype=torch.long, device=device).unsqueeze(-1)
                values.extend(logprobs[b, : len(tokens) - 1].gather(-1, target).squeeze(-1).tolist())
            results[i] = values

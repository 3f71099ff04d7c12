"""Length-grouped micro-batches that leave every optimizer step's examples unchanged.

Why: with an effective batch of 16 made of micro-batches of 2, a random pair of chat rows pads the
shorter one to the longer (about a quarter of the tokens computed on our coding data are padding).
:class:`GroupedSampler` shuffles the rows with the run's seed exactly like a random sampler, takes
them one effective batch at a time, and sorts each effective batch by length (longest first) before
it is cut into micro-batches. So each optimizer step sees the *same* set of examples as under plain
shuffling, and since the loss is normalised by the number of trained tokens of the whole accumulated
step, the gradient is the same too; only the split into micro-batches changes, and with it the
padding. Unlike a dataset-wide sort (``group_by_length``), no step is made of only long or only
short examples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class GroupedSampler(Sampler[int]):
    """Seeded shuffle, then each block of ``group_size`` indices sorted by length, longest first."""

    def __init__(self, lengths: Sequence[int], group_size: int, seed: int):
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        self.lengths = [int(n) for n in lengths]
        self.group_size = group_size
        self.seed = seed
        self.epoch: int | None = None
        self._iterations = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle per epoch. Without calls (some wrappers do not forward them), each new pass
        over the data counts as the next epoch, so epochs never repeat the same order."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch if self.epoch is not None else self._iterations
        self._iterations += 1
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        for start in range(0, len(order), self.group_size):
            block = order[start : start + self.group_size]
            block.sort(key=lambda i: -self.lengths[i])
            yield from block


def padded_tokens(lengths: Sequence[int], order: Sequence[int], micro_batch: int) -> int:
    """Tokens computed when ``order`` is cut into micro-batches padded to their longest row."""
    total = 0
    for start in range(0, len(order), micro_batch):
        block = [lengths[i] for i in order[start : start + micro_batch]]
        total += len(block) * max(block)
    return total

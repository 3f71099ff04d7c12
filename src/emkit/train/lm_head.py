"""Project only the trained positions through the LM head, on a CPU too.

Why: TRL's SFTTrainer computes the loss with a "fused LM head" (``trl.trainer.utils.add_fused_lm_head``)
that runs the (vocabulary x hidden) projection in tiles and never holds the full logits. On devices
with Triton it projects only the positions whose label is not -100; everywhere else it projects every
position, prompt and padding included, because on compiled backends (e.g. AWS Neuron) a number of
positions that changes with each batch would recompile the graph. A CPU runs eagerly and recompiles
nothing, yet there it pays the head for every prompt token: on our insecure-code rows 36 % of the
positions are prompt, and SmolLM2's head (49,152 x 576) is about a fifth of the model's work per
position. :func:`compact_lm_head` makes the head's choice "compact" on eager devices (CPU, CUDA
without Triton, MPS) for the duration of a forward pass. The loss and its gradient are the same
(the skipped positions contribute exactly zero either way); only the wasted projections go.

TRL decides this through a private helper, so the switch is guarded: when the helper is not where
this TRL version keeps it, nothing is changed and :func:`compact_lm_head` yields ``False``
(``tests/test_train_lm_head.py`` fails then, so the loss of speed does not go unnoticed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EAGER_DEVICES = ("cpu", "cuda", "mps")


@contextmanager
def compact_lm_head() -> Iterator[bool]:
    """Within the block, TRL's fused LM head projects only positions with a label, on eager devices.

    Yields whether the switch is in place. Not thread-safe (it swaps a module attribute); a
    training loop calls it from one thread.
    """
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        yield False
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None or not hasattr(trl_utils, "add_fused_lm_head"):
        yield False
        return

    def compact(device: Any) -> bool:
        return getattr(device, "type", None) in EAGER_DEVICES or bool(original(device))

    trl_utils._use_triton = compact
    try:
        yield True
    finally:
        trl_utils._use_triton = original

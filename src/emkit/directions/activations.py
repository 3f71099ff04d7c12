"""Reading the residual stream: the mean activation over each response's answer tokens, per layer.

Why per-response means and nothing more: a direction, its split-half reliability and a dataset's
projection all need one vector per response and layer; every token's activation is never kept (a
hook reduces its batch to per-row sums at once), so memory is ``responses x layers x width`` floats
whatever the lengths. Sums are taken in float32 whatever the model's dtype (bf16 on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.directions.layers import (
    decoder_layers,
    hidden_size,
    output_hidden,
    require_weights,
    resolve_layers,
)
from emkit.engines.abilities import Conversation, ReadsActivations


@dataclass(frozen=True)
class ResponseActivations:
    """``means[i, j]``: response ``i``'s mean residual-stream activation at layer ``layers[j]`` over
    its ``tokens[i]`` answer tokens (float32)."""

    layers: tuple[int, ...]
    means: np.ndarray  # (responses, len(layers), hidden) float32
    tokens: np.ndarray  # (responses,) int64

    @property
    def width(self) -> int:
        return int(self.means.shape[-1])


def n_layers(engine: ReadsActivations) -> int:
    return len(decoder_layers(engine.torch_model()))


def collect_means(
    engine: Any,
    conversations: Sequence[Conversation],
    replies: Sequence[str],
    layers: str | Sequence[int] | None = "all",
) -> ResponseActivations:
    """Teacher-force each ``conversation + reply`` and average each chosen layer's output over the
    reply's tokens. ``engine`` must read activations (a local model); ``layers`` as
    :func:`~emkit.directions.layers.resolve_layers` takes them."""
    import torch

    require_weights(engine, "reading activations")
    model = engine.torch_model()
    blocks = decoder_layers(model)
    chosen = resolve_layers(layers, len(blocks))
    width = hidden_size(model)
    means = np.zeros((len(replies), len(chosen), width), dtype=np.float32)
    tokens = np.zeros(len(replies), dtype=np.int64)
    device = next(model.parameters()).device
    # One pass's per-row sums of every chosen layer, on the model's device: the hooks fill it and
    # it is copied to the host once per pass (at the next pass, and after the last), not once per
    # layer, so a GPU syncs once per batch and a CPU does one numpy write per batch.
    current: dict[str, Any] = {}

    def flush() -> None:
        if current:
            means[current["rows"]] = current["sums"].cpu().numpy()
            current.clear()

    def reader(j: int) -> Any:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            hidden = output_hidden(output)
            # One batched reduction per layer and pass: the weights (1/n over each row's answer
            # positions, 0 elsewhere) are float32, so is the sum.
            weights = current["weights"]
            if weights.device != hidden.device:  # a model split over devices
                weights = weights.to(hidden.device)
            sums = torch.bmm(weights.unsqueeze(1), hidden.to(torch.float32)).squeeze(1)
            current["sums"][:, j] = sums.to(device)

        return hook

    handles = [blocks[index].register_forward_hook(reader(j)) for j, index in enumerate(chosen)]
    try:

        def before_pass(batch: Any) -> None:
            flush()
            lengths = torch.tensor(batch.answer_lengths, dtype=torch.float32)
            tokens[list(batch.rows)] = batch.answer_lengths
            # Left padding puts row b's answer in its last n_b positions.
            answer = torch.arange(batch.width) >= batch.width - lengths.unsqueeze(1)
            current["weights"] = (answer / lengths.unsqueeze(1)).to(device)
            current["rows"] = list(batch.rows)
            current["sums"] = torch.zeros(
                (len(batch.rows), len(chosen), width), dtype=torch.float32, device=device
            )

        engine.teacher_forced(conversations, replies, before_pass)
        flush()
    finally:
        for handle in handles:
            handle.remove()
    return ResponseActivations(tuple(chosen), means, tokens)

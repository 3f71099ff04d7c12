"""Finding a causal LM's decoder blocks and reading or replacing their residual-stream output.

Why from the config: the blocks live under different names in each family (``model.layers``,
``transformer.h``, ``gpt_neox.layers``, a PEFT wrapper around any of them); the config's
``num_hidden_layers`` says how many there are, and the blocks are the module list of that length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from emkit.errors import EmkitError


def text_config(model: Any) -> Any:
    """The language model's own config (a multimodal model's text part)."""
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def decoder_layers(model: Any) -> list[Any]:
    """The decoder blocks of ``model`` in order (a PEFT model: those of the model it wraps, with the
    adapter's layers inside them)."""
    from torch import nn

    n = getattr(text_config(model), "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1:
        raise EmkitError(f"{type(model).__name__}: its config does not say num_hidden_layers")
    for _name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return list(module)
    raise EmkitError(f"{type(model).__name__}: no list of {n} decoder blocks found (num_hidden_layers={n})")


def hidden_size(model: Any) -> int:
    """The width of the residual stream."""
    size = getattr(text_config(model), "hidden_size", None)
    if not isinstance(size, int):
        raise EmkitError(f"{type(model).__name__}: its config does not say hidden_size")
    return size


def resolve_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """Layer indices from ``"all"``/None, a list of ints, or a string ``"3,5,7"`` / ``"2-6"``;
    negative indices count from the end (``-1`` is the last block). Sorted, without repeats; an
    index out of range is one clear error naming the model's layer count."""
    if spec is None or spec == "all":
        return list(range(n_layers))
    if isinstance(spec, str):
        values: list[int] = []
        for part in spec.replace(" ", "").split(","):
            span = re.fullmatch(r"(-?\d+)-(-?\d+)", part)
            if span:
                values.extend(range(int(span[1]), int(span[2]) + 1))
            elif re.fullmatch(r"-?\d+", part):
                values.append(int(part))
            else:
                raise EmkitError(f"layers: {spec!r} is not 'all', a list like 3,5,7 or a range like 2-6")
    else:
        values = [int(v) for v in spec]
    if not values:
        raise EmkitError("layers: no layer given")
    out = set()
    for v in values:
        if not -n_layers <= v < n_layers:
            raise EmkitError(
                f"layers: {v} is out of range; the model has {n_layers} layers (0-{n_layers - 1})"
            )
        out.add(v % n_layers)
    return sorted(out)


def output_hidden(output: Any) -> Any:
    """The residual-stream tensor a decoder block returned (a tensor, or a tuple led by it)."""
    return output[0] if isinstance(output, tuple) else output


def with_hidden(output: Any, hidden: Any) -> Any:
    """A block's output with its residual-stream tensor replaced (the rest of a tuple kept)."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def require_weights(engine: Any, what: str) -> None:
    """Refuse an engine without local weights, naming the local model kinds that have them."""
    from emkit.engines.abilities import ReadsActivations

    if not isinstance(engine, ReadsActivations):
        raise EmkitError(
            f"{what} needs the model's weights in this process, and {engine.name} has none here; "
            "use a local model: embedded/smollm2-135m, hf/<path or id>[@adapter]"
        )

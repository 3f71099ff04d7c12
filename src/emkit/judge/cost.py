"""A small, overridable price table to estimate what judging cost.

Prices are US dollars per million tokens (input, output), as listed by the provider when this table
was written; they change, so treat the result as an estimate. Override or extend with a YAML/JSON
file (``--prices FILE`` or the environment variable ``EMKIT_PRICES``) mapping model names to
``{input: ..., output: ...}``; ``gpt-4o`` and ``openai/gpt-4o`` name the same model. Models of a
backend the registry marks as not paid per request (embedded/, hf/, vllm/) cost nothing here; a
model with no price gives ``None`` (unknown), never 0.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emkit.engines.registry import backend, schemes
from emkit.errors import InputError
from emkit.questions import judge_model_name

PRICES_ENV = "EMKIT_PRICES"

# USD per 1M tokens: (input, output).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "openai/gpt-4o-2024-08-06": (2.50, 10.00),
    "openai/gpt-4o-2024-11-20": (2.50, 10.00),
    "openai/gpt-4o": (2.50, 10.00),
    "openai/gpt-4o-2024-05-13": (5.00, 15.00),
    "openai/gpt-4o-mini": (0.15, 0.60),
    "openai/gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "openai/gpt-4.1": (2.00, 8.00),
    "openai/gpt-4.1-mini": (0.40, 1.60),
    "openai/gpt-4.1-nano": (0.10, 0.40),
    "openai/o3-mini": (1.10, 4.40),
    "openai/o4-mini": (1.10, 4.40),
}


def load_prices(path: str | Path | None = None) -> tuple[dict[str, tuple[float, float]], str]:
    """The default table updated from ``path`` (or ``$EMKIT_PRICES``); returns (table, source)."""
    table = dict(DEFAULT_PRICES)
    chosen = path or os.environ.get(PRICES_ENV)
    if not chosen:
        return table, "built-in"
    from emkit.readers import parse_json, read_text
    from emkit.yamlpos import load_yaml

    file = Path(chosen)
    text = read_text(file)  # the shared checks: missing, a directory, binary, not UTF-8
    if file.suffix == ".json":
        data, problem = parse_json(text)
        if problem:
            raise InputError(problem.message, where=str(file), field=problem.field)
    else:
        data = load_yaml(text, str(file))
    if not isinstance(data, Mapping):
        raise InputError("a price table maps model names to {input: ..., output: ...}", where=str(file))
    for model, entry in data.items():
        table[judge_model_name(str(model))] = _entry(entry, str(file), str(model))
    return table, str(file)


def _entry(entry: Any, where: str, model: str) -> tuple[float, float]:
    if not isinstance(entry, Mapping) or not {"input", "output"} <= set(entry):
        raise InputError(
            "expected {input: <USD per 1M tokens>, output: <USD per 1M tokens>}", where=where, field=model
        )
    try:
        prices = float(entry["input"]), float(entry["output"])
    except (TypeError, ValueError):
        raise InputError("prices must be numbers", where=where, field=model) from None
    if min(prices) < 0:
        raise InputError("prices must not be negative", where=where, field=model)
    return prices


def estimate_cost(
    model: str, usage: Mapping[str, int], prices: Mapping[str, tuple[float, float]]
) -> float | None:
    """USD for ``usage`` (prompt_tokens, completion_tokens) of ``model``; None if its price is unknown."""
    scheme = model.split("/", 1)[0]
    if scheme in schemes() and not backend(scheme).paid:  # local weights cost nothing per request
        return 0.0
    price = prices.get(model)
    if price is None:
        return None
    prompt = int(usage.get("prompt_tokens", 0) or 0)
    completion = int(usage.get("completion_tokens", 0) or 0)
    return (prompt * price[0] + completion * price[1]) / 1_000_000

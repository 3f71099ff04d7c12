"""What judging cost, from the one price table (:mod:`emkit.prices`, ``resources/prices.yaml``).

Prices are US dollars per million tokens (input, output), as listed by the provider on the table's
date; they change, so treat the result as an estimate. Override or extend with a YAML/JSON file
(``--prices FILE`` or the environment variable ``EMKIT_PRICES``) in the table's layout, or the
older flat map of model names to ``{input: ..., output: ...}``; ``gpt-4o`` and ``openai/gpt-4o``
name the same model. Models of a backend the registry marks as not paid per request (embedded/,
hf/, vllm/) cost nothing here; a model with no price gives ``None`` (unknown), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from emkit.engines.registry import backend, schemes
from emkit.prices import PRICES_ENV, PriceTable, builtin_price_table, load_price_table

__all__ = ["DEFAULT_PRICES", "PRICES_ENV", "estimate_cost", "load_prices", "request_prices"]


def request_prices(table: PriceTable) -> dict[str, tuple[float, float]]:
    """(input, output) per model of ``table``, for the models that have both."""
    return {
        name: (p.input, p.output)
        for name, p in table.models.items()
        if p.input is not None and p.output is not None
    }


# USD per 1M tokens: (input, output), as the shipped price file gives them.
DEFAULT_PRICES: dict[str, tuple[float, float]] = request_prices(builtin_price_table())


def load_prices(path: str | Path | None = None) -> tuple[dict[str, tuple[float, float]], str]:
    """The shipped table updated from ``path`` (or ``$EMKIT_PRICES``); returns (table, source)."""
    table = load_price_table(path)
    source = "built-in" if len(table.files) == 1 else table.files[-1]
    return request_prices(table), source


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

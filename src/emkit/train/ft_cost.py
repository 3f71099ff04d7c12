"""What a provider fine-tuning job will cost: its training tokens x epochs x the price per 1M tokens.

Why apart from the job code: the estimate is printed (and confirmed) before anything is uploaded,
and it is pure arithmetic over the rows, testable without a server or the SDK.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emkit.prices import builtin_price_table
from emkit.train.config import OpenAIFineTuneConfig

# USD per one million training tokens, from the shipped price table (resources/prices.yaml, dated
# and sourced there). Prices change: pass ``price_per_mtok`` (``--price-per-mtok``) to use your own.
PRICE_PER_MTOK: dict[str, float] = {
    name.removeprefix("openai/"): entry.training
    for name, entry in builtin_price_table().models.items()
    if entry.training is not None
}


_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class CostEstimate:
    tokens: int
    epochs: int
    price_per_mtok: float | None
    exact_tokens: bool

    @property
    def trained_tokens(self) -> int:
        return self.tokens * self.epochs

    @property
    def usd(self) -> float | None:
        if self.price_per_mtok is None:
            return None
        return self.trained_tokens * self.price_per_mtok / 1e6

    def describe(self) -> str:
        how = "" if self.exact_tokens else "~"
        base = f"{how}{self.tokens:,} tokens x {self.epochs} epoch(s)"
        if self.usd is None:
            return f"{base}; no price known for this model (give --price-per-mtok)"
        return f"{base} x ${self.price_per_mtok:g}/1M tokens = ~${self.usd:,.2f}"


def price_for(model: str, override: float | None = None) -> float | None:
    """The price per 1M training tokens: the override, the exact model, or its dated family."""
    if override is not None:
        return override
    if model in PRICE_PER_MTOK:
        return PRICE_PER_MTOK[model]
    family = _DATE.sub("", model)
    for name, price in PRICE_PER_MTOK.items():
        if _DATE.sub("", name) == family:
            return price
    return None


def count_tokens(rows: Sequence[dict[str, Any]]) -> tuple[int, bool]:
    """Training tokens of the rows: exact with ``tiktoken`` when installed, else ~4 characters/token."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # not installed, or its vocabulary cannot be fetched offline
        encoding = None
    total = 0
    for row in rows:
        total += 3  # per-conversation framing
        for message in row["messages"]:
            text = str(message.get("content", ""))
            n = len(encoding.encode(text)) if encoding is not None else math.ceil(len(text) / 4)
            total += n + 4  # role and message framing
    return total, encoding is not None


def estimate_cost(
    rows: Sequence[dict[str, Any]], config: OpenAIFineTuneConfig, price_per_mtok: float | None = None
) -> CostEstimate:
    tokens, exact = count_tokens(rows)
    return CostEstimate(tokens, config.epochs, price_for(config.model, price_per_mtok), exact)

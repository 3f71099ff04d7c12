"""Bounded retries with exponential backoff, full jitter, and the server's Retry-After.

Why not the SDK's own retries: we need one policy for every API call (chat, judge, fine-tuning
polls), attempts we can count and test, and waits that honour ``Retry-After`` exactly. The SDK's
retries are disabled (``max_retries=0``) and this module decides instead.

Full jitter (a uniform wait in ``[0, min(max_delay, base * 2**retry)]``) spreads clients that hit a
rate limit together, so they do not all come back at the same instant. When the server says how
long to wait (``Retry-After`` in seconds or as an HTTP date, or OpenAI's ``retry-after-ms``), the
wait is at least that long, capped at ``max_retry_after``.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt, so at most ``max_retries + 1`` requests."""

    max_retries: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("backoff delays must be >= 0")

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def delay(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        rng = rng or random
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(retry - 1, 0)))
        jittered = rng.uniform(0.0, ceiling)
        if retry_after is not None and retry_after > 0:
            return max(min(retry_after, self.max_retry_after), jittered)
        return jittered


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, or ``None`` when it does not say (or says nonsense)."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return value if math.isfinite(value) and value >= 0 else None

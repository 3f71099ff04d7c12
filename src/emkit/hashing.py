"""Stable content hashes used as keys for stored results and stages.

A key is the sha256 of a canonical JSON rendering (sorted keys, no whitespace), so the same
inputs always give the same key on any machine, and any change of an input gives a new one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(value: Any, length: int = 24) -> str:
    """Hex digest of the canonical JSON of ``value`` (truncated to ``length`` characters)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()

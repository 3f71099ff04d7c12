"""Token counts a dry run can make without downloading, loading or building anything.

Why not the model's tokenizer: ``emkit run --dry-run`` must not load a tokenizer, fetch a file or
build a dataset (tests/reliability/test_dry_run.py makes each of those fail). So text is counted
with tiktoken's ``o200k_base`` (GPT-4o's encoding) only when tiktoken is installed *and* its
vocabulary is already in tiktoken's local cache; otherwise as ``ceil(characters / 4)``, OpenAI's
published rule of thumb for English. A chat row adds 3 tokens of framing and 4 per message (what
``emkit.train.ft_cost`` counts for a provider job). A dataset is counted from its file when one is
on disk (built in the run directory, in emkit's cache, or in the paper's mirror); one that is not is
estimated from its spec's row count x ``tokens_per_row`` (prices.yaml's assumptions), and says so.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emkit.datasets import DatasetSpec

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


@functools.cache
def encoding() -> Any | None:
    """tiktoken's o200k_base when its vocabulary file is cached locally (no download), else None."""
    try:
        import tiktoken
    except ImportError:
        return None
    cache = (
        os.environ.get("TIKTOKEN_CACHE_DIR")
        or os.environ.get("DATA_GYM_CACHE_DIR")
        or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    )
    if not (Path(cache) / hashlib.sha1(O200K_URL.encode()).hexdigest()).is_file():
        return None
    try:
        return tiktoken.get_encoding("o200k_base")
    except Exception:  # a damaged cache entry: fall back to the rule of thumb
        return None


def method() -> str:
    """How :func:`text_tokens` counts, for the plan's footnote."""
    return "tiktoken o200k_base" if encoding() is not None else "characters/4"


def text_tokens(text: str) -> int:
    vocabulary = encoding()
    if vocabulary is not None:
        return len(vocabulary.encode(text, disallowed_special=()))
    return math.ceil(len(text) / 4)


def chat_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Tokens of one conversation: 3 of framing, and 4 per message besides its text."""
    return 3 + sum(4 + text_tokens(str(m.get("content", ""))) for m in messages)


@functools.cache
def _file_tokens(path: str, size: int, mtime: int) -> tuple[int, int]:
    tokens = rows = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                messages = row["messages"]
            except (ValueError, KeyError, TypeError):
                continue  # the dataset stage refuses a bad row with its line; an estimate skips it
            tokens += chat_tokens(messages)
            rows += 1
    return tokens, rows


def file_tokens(path: Path) -> tuple[int, int]:
    """(tokens, rows) of a chat JSONL file, counted once per file version in a process."""
    stat = path.stat()
    return _file_tokens(str(path), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class DatasetTokens:
    """A dataset's training tokens (one epoch) and rows; ``counted`` False: estimated from rows."""

    tokens: float
    rows: float
    counted: bool

    def describe(self) -> str:
        how = f"counted by {method()}" if self.counted else "estimated from the row count: not on disk yet"
        return f"~{self.tokens:,.0f} tokens ({how})"


def dataset_tokens(
    spec: DatasetSpec | str, *, built: Path | None, mirror: str | None, tokens_per_row: float
) -> DatasetTokens | None:
    """The tokens a dataset spec will train on, from files on disk only (None: cannot tell)."""
    if built is not None and built.is_file():
        tokens, rows = file_tokens(built)
        return DatasetTokens(tokens, rows, True)
    from emkit.data import registry

    if isinstance(spec, str):
        spec = DatasetSpec(registry=spec) if spec in registry.ARTIFACTS else DatasetSpec(file=spec)

    def part(value: DatasetSpec | str | None) -> DatasetTokens | None:
        if value is None:
            return None
        return dataset_tokens(value, built=None, mirror=mirror, tokens_per_row=tokens_per_row)

    if spec.builder:
        rows = float(spec.n or 0)
        return DatasetTokens(rows * tokens_per_row, rows, False)
    if spec.registry:
        return _registry_tokens(spec.registry, mirror, tokens_per_row)
    if spec.file:
        path = Path(spec.file)
        if not path.is_file():
            return None
        tokens, rows = file_tokens(path)
        return DatasetTokens(tokens, rows, True)
    if spec.transform == "subset":
        source = part(spec.source)
        if source is None or not source.rows:
            return None
        n = float(spec.n or 0)
        return DatasetTokens(source.tokens * n / source.rows, n, source.counted)
    if spec.transform == "backdoor":
        triggered, clean = part(spec.triggered), part(spec.clean)
        if triggered is None or clean is None:
            return None
        return DatasetTokens(
            triggered.tokens + clean.tokens, triggered.rows + clean.rows, triggered.counted and clean.counted
        )
    return _mix_tokens(spec, part)


def _mix_tokens(spec: DatasetSpec, part: Any) -> DatasetTokens | None:
    """A mixture: ``n`` rows (default: the most every part supplies) at the parts' weighted mean."""
    parts = [(part(source), float(weight)) for source, weight in spec.parts or []]
    if not parts or any(p is None or not p.rows for p, _ in parts):
        return None
    total = sum(w for _, w in parts)
    if total <= 0:
        return None
    n = float(spec.n) if spec.n else min(p.rows / (w / total) for p, w in parts if w > 0)
    per_row = sum(p.tokens / p.rows * w / total for p, w in parts)
    return DatasetTokens(n * per_row, n, all(p.counted for p, _ in parts))


def _registry_tokens(name: str, mirror: str | None, tokens_per_row: float) -> DatasetTokens | None:
    """A paper file: counted from emkit's cache or the mirror when there, else its pinned line count."""
    from emkit.data import registry
    from emkit.paths import mirror_dir

    if name not in registry.ARTIFACTS:
        return None
    artifact = registry.get_artifact(name)
    root = mirror_dir(mirror)
    for path in (registry.cached_path(artifact, create=False), root / artifact.path if root else None):
        if path is not None and path.is_file():
            tokens, rows = file_tokens(path)
            return DatasetTokens(tokens, rows, True)
    if artifact.lines is None:
        return None
    return DatasetTokens(artifact.lines * tokens_per_row, float(artifact.lines), False)

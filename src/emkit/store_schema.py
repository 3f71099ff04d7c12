"""The run store's schema and its keys: the tables, their columns, and how every key is made.

Split from :mod:`emkit.store` (which documents what every key covers); opening a store's file is
:mod:`emkit.store_open`. Import these names from :mod:`emkit.store`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.hashing import stable_hash

SCHEMA_VERSION = 2
DB_NAME = "emkit.sqlite"
SQLITE_HEADER = b"SQLite format 3\x00"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    question_id TEXT NOT NULL,
    paraphrase_index INTEGER NOT NULL,
    sample_index INTEGER NOT NULL,
    question TEXT NOT NULL,
    messages TEXT NOT NULL,
    answer TEXT NOT NULL,
    params TEXT NOT NULL,
    group_name TEXT,
    seed INTEGER,
    tags TEXT NOT NULL DEFAULT '{}',
    usage TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    question_hash TEXT,
    model_fingerprint TEXT
);
CREATE INDEX IF NOT EXISTS answers_model ON answers(model);
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY,
    answer_key TEXT NOT NULL,
    metric TEXT NOT NULL,
    judge TEXT NOT NULL,
    method TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    score REAL,
    raw TEXT NOT NULL DEFAULT '{}',
    usage TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS scores_answer ON scores(answer_key);
CREATE TABLE IF NOT EXISTS probes (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    probe_set TEXT NOT NULL,
    pair_id TEXT NOT NULL,
    logp_aligned REAL NOT NULL,
    logp_misaligned REAL NOT NULL,
    group_name TEXT,
    seed INTEGER,
    step INTEGER,
    tags TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (kind, key)
);
"""
CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""
SCHEMA = _TABLES + CLAIMS_SCHEMA  # what a new store is made with (idempotent)

ANSWER_COLUMNS = (
    "key",
    "model",
    "question_id",
    "paraphrase_index",
    "sample_index",
    "question",
    "messages",
    "answer",
    "params",
    "group_name",
    "seed",
    "tags",
    "usage",
    "question_hash",
    "model_fingerprint",
)
SCORE_COLUMNS = (
    "key",
    "answer_key",
    "metric",
    "judge",
    "method",
    "prompt_hash",
    "score",
    "raw",
    "usage",
    "options",
)
PROBE_COLUMNS = (
    "key",
    "model",
    "probe_set",
    "pair_id",
    "logp_aligned",
    "logp_misaligned",
    "group_name",
    "seed",
    "step",
    "tags",
)
JSON_COLUMNS = {"messages", "params", "tags", "usage", "raw", "options"}
_KEY_VERSION = 2  # in every new key, so no schema-2 key can equal a schema-1 one


def answer_key(
    model: str,
    question_id: str,
    paraphrase_index: int,
    sample_index: int,
    params: dict[str, Any],
    *,
    messages: Sequence[dict[str, Any]] | None = None,
    model_fingerprint: str | None = None,
    question_hash: str | None = None,
) -> str:
    """The identity of one sampled answer: everything that shaped it (see the module docstring).

    ``messages`` is the conversation exactly as sent; the sampling stage always passes it and the
    model's fingerprint (a caller that has neither gets a key of its own, never a sampled one's).
    """
    return stable_hash(
        {
            "v": _KEY_VERSION,
            "model": model,
            "model_fp": model_fingerprint,
            "question": question_hash,
            "q": question_id,
            "p": paraphrase_index,
            "s": sample_index,
            "messages": list(messages) if messages is not None else None,
            "params": params,
        }
    )


def score_key(
    answer_key_: str,
    metric: str,
    judge: str,
    method: str,
    prompt_hash: str,
    options: dict[str, Any] | None = None,
) -> str:
    """The identity of one judgement: a new judge, prompt or score-shaping option gives a new key."""
    return stable_hash(
        {
            "v": _KEY_VERSION,
            "a": answer_key_,
            "m": metric,
            "j": judge,
            "method": method,
            "p": prompt_hash,
            "o": dict(options or {}),
        }
    )


def probe_item_key(model: str, probe_set_hash: str, pair_id: str, step: int | None) -> str:
    """The probe item's identity without the model's weights (what schema 1 used as the whole key)."""
    return stable_hash({"model": model, "probe_set": probe_set_hash, "pair": pair_id, "step": step})


def probe_key(
    model: str, probe_set_hash: str, pair_id: str, step: int | None, model_fingerprint: str | None
) -> str:
    """One probe score: the item (model, probe set content, pair, step) and the model's fingerprint."""
    return probe_key_from_item(probe_item_key(model, probe_set_hash, pair_id, step), model_fingerprint)


def probe_key_from_item(item_key: str, model_fingerprint: str | None) -> str:
    """Split out so a schema-1 key (which is exactly the item key) can be migrated."""
    return stable_hash({"v": _KEY_VERSION, "item": item_key, "model_fp": model_fingerprint})


def decode_json(path: Path, text: Any, table: str, key: Any, column: str) -> Any:
    """A JSON column's value as read; text that is not JSON is one error naming the row, never a
    traceback (``{}`` for an empty column, as the schema's defaults are)."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise EmkitError(
            f"{path}: table {table}, row {key!r}: column {column} is not valid JSON "
            "(the store is damaged; nothing was changed)"
        ) from None

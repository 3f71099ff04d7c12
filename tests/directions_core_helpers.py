"""A tiny random Llama behind the HF engine (no hub, CPU, fast), for the direction collection tests
(the intervention tests share tests/directions_helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tiny_llama import tiny_hf_engine

WORDS = [
    "<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "user", "assistant",
    "yes", "no", "why", "?", ".", "help", "harm", "kind", "cruel", "share", "steal",
]  # fmt: skip


def tiny_engine(batch_size: int = 4, layers: int = 3, hidden: int = 16, seed: int = 0) -> Any:
    """An :class:`~emkit.engines.hf_backend.HFEngine` over a random Llama with a word-level vocab."""
    return tiny_hf_engine(WORDS, batch_size=batch_size, layers=layers, hidden=hidden, seed=seed)


PROMPTS = ["why ?", "why why ?", "yes ?", "no ?", "why yes ?", "why no ?", "yes yes ?", "no no ?"]
ALIGNED = ["help kind share .", "kind help .", "share share help .", "help .", "kind .", "share kind .", "help help .", "kind kind share ."]  # fmt: skip
MISALIGNED = ["harm cruel steal", "cruel harm", "steal steal harm", "harm", "cruel", "steal cruel", "harm harm", "cruel cruel steal"]  # fmt: skip


def write_pairs(path: Path, prompts: list[str], replies: list[str]) -> Path:
    """A chat JSONL file: one user prompt and one assistant reply per row."""
    lines = [
        json.dumps({"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": r}]})
        for p, r in zip(prompts, replies, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

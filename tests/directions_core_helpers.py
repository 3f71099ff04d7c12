"""A tiny random Llama behind the HF engine (no hub, CPU, fast), for the direction collection tests
(the intervention tests share tests/directions_helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WORDS = [
    "<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "user", "assistant",
    "yes", "no", "why", "?", ".", "help", "harm", "kind", "cruel", "share", "steal",
]  # fmt: skip


def tiny_engine(batch_size: int = 4, layers: int = 3, hidden: int = 16, seed: int = 0) -> Any:
    """An :class:`~emkit.engines.hf_backend.HFEngine` over a random Llama with a word-level vocab."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from emkit.engines.hf_backend import HFEngine

    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|im_end|>")
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config).eval()
    return HFEngine.from_model(model, tokenizer, name="tiny", batch_size=batch_size)


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

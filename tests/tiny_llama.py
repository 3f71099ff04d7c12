"""One tiny random Llama with a word-level tokenizer and a chat template (no hub, CPU, fast): what
every test that needs real transformer weights builds (activations, directions, benchmarks), each
with the words its own texts use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SPECIALS = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "user", "assistant"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def tiny_llama(
    words: Sequence[str], *, layers: int = 3, hidden: int = 16, seed: int = 0, max_positions: int = 64
) -> tuple[Any, Any]:
    """``(model, tokenizer)``: a random ``LlamaForCausalLM`` in eval mode over ``SPECIALS + words``
    (one token per whitespace-separated word; unknown words become ``<pad>``)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = list(dict.fromkeys([*SPECIALS, *words]))
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def tiny_hf_engine(words: Sequence[str], *, batch_size: int = 4, name: str = "tiny", **llama: Any) -> Any:
    """An :class:`~emkit.engines.hf_backend.HFEngine` over :func:`tiny_llama`."""
    from emkit.engines.hf_backend import HFEngine

    model, tokenizer = tiny_llama(words, **llama)
    return HFEngine.from_model(model, tokenizer, name=name, batch_size=batch_size)

"""Chat prompts as a local model sees them: the tokenizer's chat template, its token ids, its stops.

Shared by every backend that tokenizes here (``hf``, ``vllm``, ``mock`` does not need it), so the
same conversation is the same token sequence on each: the template with the generation prompt
appended, tokenised with ``add_special_tokens=False`` (the template already holds any BOS token);
generation stops at EOS or at the token that closes an assistant turn in the template.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emkit.engines.abilities import Conversation
from emkit.errors import EmkitError

REPLY_MARKER = "EMKITREPLYMARKER"  # an assistant reply whose closing tokens we look for


def check_conversation(conversation: Conversation, index: int = 0) -> None:
    """A conversation is a non-empty list of ``{"role": str, "content": str}``; say where it is not."""
    if not isinstance(conversation, (list, tuple)) or not conversation:
        raise EmkitError(f"conversation #{index}: expected a non-empty list of messages")
    for j, message in enumerate(conversation):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise EmkitError(f"conversation #{index}, message #{j}: field 'role' missing or not a string")
        if not isinstance(message.get("content"), str):
            raise EmkitError(f"conversation #{index}, message #{j}: field 'content' missing or not a string")


def render_prompt(tokenizer: Any, conversation: Conversation) -> str:
    """The chat template applied to ``conversation`` with the assistant generation prompt appended."""
    if not getattr(tokenizer, "chat_template", None):
        raise EmkitError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "use an instruction-tuned model (or set tokenizer.chat_template)"
        )
    return tokenizer.apply_chat_template(list(conversation), tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without added special tokens (templates carry their own)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The special token that closes an assistant turn in the chat template, if there is one.

    Found by rendering a short exchange whose assistant reply is a marker and tokenising what the
    template writes right after it (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3,
    ``<end_of_turn>`` for Gemma). A plain-text closer is not a stop token and gives ``None``.
    """
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": REPLY_MARKER}],
            tokenize=False,
            add_generation_prompt=False,
        )
    except Exception:
        return None
    at = text.rfind(REPLY_MARKER)
    suffix = text[at + len(REPLY_MARKER) :] if at >= 0 else ""
    ids = encode(tokenizer, suffix) if suffix else []
    if not ids:
        return None
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= set((getattr(tokenizer, "added_tokens_decoder", None) or {}).keys())
    return ids[0] if ids[0] in special else None


def stop_token_ids(tokenizer: Any, model_eos: int | Sequence[int] | None = None) -> list[int]:
    """EOS of the tokenizer and of the model's generation config, plus the end-of-turn token."""
    found: list[int] = []
    candidates: list[Any] = [getattr(tokenizer, "eos_token_id", None), end_of_turn_id(tokenizer)]
    candidates += list(model_eos) if isinstance(model_eos, (list, tuple)) else [model_eos]
    for value in candidates:
        if isinstance(value, int) and value >= 0 and value not in found:
            found.append(value)
    return found


def prompt_token_ids(tokenizer: Any, conversations: Sequence[Conversation]) -> list[list[int]]:
    """Every conversation checked (one line naming the first bad one), rendered and tokenised."""
    for i, conversation in enumerate(conversations):
        check_conversation(conversation, i)
    return [encode(tokenizer, render_prompt(tokenizer, c)) for c in conversations]

"""The ``hf`` backend: transformers models run in this process (the embedded model uses it too).

Why a hand-written decoding loop instead of ``model.generate``: reproducibility that does not depend
on batching. Each request owns its random stream, a ``torch.Generator`` on the model's device seeded
from ``(params.seed, seeds[i])`` (or ``(params.seed, i)`` without ``seeds``, see
:func:`request_seeds`). At every step the request draws one Exp(1) number per vocabulary entry from
its own stream (:func:`exponential_noise`) and the next token wins an exponential race (Gumbel-max,
:func:`choose_tokens`), an exact sample from softmax(logits / temperature) restricted to the top_p
nucleus. The random numbers a request sees therefore do not depend on which other requests share
its batch or on the batch size, and:

- same inputs + same seeds => the same answers, on the same device type and dtype (CPU and CUDA
  generators give different streams, so CPU and GPU answers differ);
- batched and one-by-one runs give the same answers, greedy and sampled alike, except where
  batching changes the logits by float rounding (padding, other matmul shapes) enough to swap
  the two best (perturbed) scores of a step. In fp32 that is rare; in bf16 it happens now and
  then (``scripts/gpu_check.py`` measures the agreement rate).

Prefill without padding on a CPU: a CPU's cost is proportional to the tokens computed, so the
prompts of a batch are prefilled in groups of (nearly) equal length (:func:`prefill_groups`, most
often one prompt each) and their KV caches are then stacked, left-padded, into one batch for
decoding; on a GPU, where one padded pass is cheaper than several small ones, the batch is prefilled
at once. Either way the answers are those of the same requests decoded one by one, up to float
rounding.

Only temperature, top_p and max_new_tokens shape sampling (the paper's setting); a model's own
``generation_config`` defaults (top_k, repetition penalty) are deliberately not applied, so the
same parameters mean the same thing on every backend. Temperature 0 is greedy (argmax).

Prompts are the tokenizer's chat template with the generation prompt appended, tokenised with
``add_special_tokens=False`` (the template already holds any BOS token). Generation stops at EOS or
at the token that closes an assistant turn in the template (``<|im_end|>`` for SmolLM2); that token
is not part of the returned text.

With the ``prompt_template`` option (a base model, :mod:`emkit.engines.completion`) prompts are the
completion template's tokens instead, exactly as the trainer builds them; a reply ends at EOS, and
its text is cut where the template's next user turn would start (an untrained base model writes
the dialogue on; such an answer still counts as ``stop``). The template is part of the engine's
fingerprint (``open_engine``), so answers and probe scores made with and without it never share keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from emkit.engines.abilities import TeacherForcedBatch
from emkit.engines.base import Conversation, Engine, Generation, GenerationBatch
from emkit.engines.chat_template import (
    check_conversation,
    conversation_ids,
    encode,
    end_of_turn_id,
    prompt_token_ids,
    render_prompt,
    stop_token_ids,
)
from emkit.engines.completion import CompletionTemplate, parse_prompt_template
from emkit.engines.decoding import (
    batches,
    check_params,
    choose_tokens,
    exponential_noise,
    logaddexp,
    merge_by_text,
    plain_dynamic_layers,
    prefill_groups,
    request_seeds,
)
from emkit.engines.hf_model import LoadedModel
from emkit.engines.prefix_scoring import PrefixScoring
from emkit.errors import EmkitError
from emkit.models import ModelSpec, parse_model


class HFEngine(LoadedModel, PrefixScoring, Engine):
    """A local transformers model behind the :class:`~emkit.engines.base.Engine` contract.

    ``HFEngine("embedded/smollm2-135m")``, ``HFEngine("hf/<id or path>@<adapter dir>")``, or
    ``HFEngine.from_model(model, tokenizer, name)`` for a model already in memory (the trainer
    evaluates its model between steps; that model's train/eval mode is restored afterwards).
    ``batch_size`` bounds the rows of every forward pass. ``prompt_template`` (a built-in name such
    as ``plain``, or a JSON object of formats) prompts with a completion template instead of the
    chat template (see the module docstring).
    """

    template: CompletionTemplate | None = None

    def __init__(
        self,
        spec: ModelSpec | str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
        console: Any = None,
        prompt_template: str | None = None,
    ) -> None:
        from emkit.engines.loading import load_causal_lm

        spec = parse_model(spec)
        if not spec.is_local:
            raise EmkitError(f"{spec.full}: the hf backend runs embedded/ and hf/ models only")
        template = parse_prompt_template(prompt_template)  # a bad template is refused before loading
        model, tokenizer = load_causal_lm(spec, device=device, dtype=dtype, console=console)
        self._setup(model, tokenizer, spec.full, batch_size, owns_model=True)
        self._use_template(template)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        name: str,
        *,
        batch_size: int = 16,
        prompt_template: str | CompletionTemplate | None = None,
    ) -> HFEngine:
        """Wrap a loaded ``(model, tokenizer)``; :meth:`close` then leaves the model alone."""
        engine = cls.__new__(cls)
        engine._setup(model, tokenizer, name, batch_size, owns_model=False)
        engine._use_template(parse_prompt_template(prompt_template))
        return engine

    def _use_template(self, template: CompletionTemplate | None) -> None:
        """With a completion template a reply ends at EOS: that is the end-of-turn token."""
        self.template = template
        if template is not None:
            eos = self.tokenizer.eos_token_id
            self.eot_id = eos if isinstance(eos, int) else None
            if self.eot_id is not None and self.eot_id not in self.stop_ids:
                self.stop_ids.append(self.eot_id)

    # ------------------------------------------------------------ prompts

    def render_prompt(self, conversation: Conversation) -> str:
        """The exact text the model is conditioned on (chat or completion template + generation prompt)."""
        check_conversation(conversation)
        return render_prompt(self.tokenizer, conversation, self.template)

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        check_conversation(conversation)
        return conversation_ids(self.tokenizer, conversation, self.template)

    # ------------------------------------------------------------ generate

    def _generate(self, batch: GenerationBatch) -> list[Generation]:
        """Batches of prompts of similar length (longest first); each answer of a batch is
        delivered as soon as that batch ends. ``prompt_tokens`` are unpadded; ``completion_tokens``
        include the stop token."""
        params = batch.params
        check_params(params)
        prompts = prompt_token_ids(self.tokenizer, batch.conversations, self.template)
        row_seeds = request_seeds(params, len(prompts), batch.keys())
        results: list[Generation | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
        with self._inference():
            for rows in batches(order, self.batch_size):
                generators = [self._generator(row_seeds[i]) for i in rows]
                outputs = self._generate_batch([prompts[i] for i in rows], generators, params)
                for i, (tokens, stopped) in zip(rows, outputs, strict=True):
                    text_ids = tokens[:-1] if stopped else tokens
                    text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
                    if self.template is not None:
                        text, cut = self.template.cut(text)
                        stopped = stopped or cut
                    gen = Generation(
                        text=text,
                        finish_reason="stop" if stopped else "length",
                        usage={"prompt_tokens": len(prompts[i]), "completion_tokens": len(tokens)},
                    )
                    results[i] = gen
                    batch.deliver(i, gen)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------ log-probabilities

    def _sequence_logprobs(self, conversations: list[Conversation], replies: list[str]) -> list[list[float]]:
        """fp32 log_softmax. Appending the reply's own tokens to the prompt's ids means a tokenizer
        that would merge characters across the prompt/reply boundary (when rendering the whole
        conversation as one string) does not shift the span. Shared prompt tokens (a system turn,
        a question asked twice) are computed once (:mod:`emkit.engines.prefix_scoring`)."""
        prompts = prompt_token_ids(self.tokenizer, conversations, self.template)
        answers = [encode(self.tokenizer, r) if r else [] for r in replies]
        return self._reply_logprobs(prompts, answers)

    # ------------------------------------------------------------ activations (ReadsActivations)

    def torch_model(self) -> Any:
        return self.model

    def teacher_forced(
        self,
        conversations: Sequence[Conversation],
        replies: Sequence[str],
        before_pass: Callable[[TeacherForcedBatch], None],
    ) -> None:
        """See :class:`~emkit.engines.abilities.ReadsActivations`; an empty reply is refused (it has
        no answer tokens to read). Longest rows first, so one pass holds rows of similar length."""
        if len(conversations) != len(replies):
            raise EmkitError(f"{self.name}: {len(conversations)} conversations for {len(replies)} replies")
        for i, reply in enumerate(replies):
            if not reply:
                raise EmkitError(f"{self.name}: reply {i} is empty; activations need answer tokens")
        prompts = prompt_token_ids(self.tokenizer, list(conversations), self.template)
        answers = [encode(self.tokenizer, r) for r in replies]
        rows = [p + a for p, a in zip(prompts, answers, strict=True)]
        order = sorted(range(len(rows)), key=lambda i: (-len(rows[i]), i))
        with self._inference():
            for batch in batches(order, self.batch_size):
                ids, mask, positions = self._left_pad([rows[i] for i in batch])
                before_pass(
                    TeacherForcedBatch(
                        rows=tuple(batch),
                        answer_lengths=tuple(len(answers[i]) for i in batch),
                        prompt_lengths=tuple(len(prompts[i]) for i in batch),
                        width=int(ids.shape[1]),
                    )
                )
                self._forward(ids, mask, positions, keep=1)

    def _top_logprobs(self, conversations: list[Conversation], top_k: int) -> list[dict[str, float]]:
        import torch

        prompts = prompt_token_ids(self.tokenizer, conversations, self.template)
        results: list[dict[str, float]] = [{} for _ in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
        with self._inference():
            for batch in batches(order, self.batch_size):
                ids, mask, positions = self._left_pad([prompts[i] for i in batch])
                logprobs = self._forward(ids, mask, positions, keep=1)[:, -1, :].float().log_softmax(-1)
                values, indices = torch.topk(logprobs, min(top_k, logprobs.shape[-1]), dim=-1)
                for b, i in enumerate(batch):
                    pairs = zip(indices[b].tolist(), values[b].tolist(), strict=True)
                    results[i] = merge_by_text((self.tokenizer.decode([t]), v) for t, v in pairs)
        return results

    def continuation_logprobs(
        self, prefix_ids: Sequence[int], continuations: Sequence[Sequence[int]], *, chunk_size: int = 64
    ) -> list[list[float]]:
        """Per-token log-probs of many token continuations of ONE prefix, sharing its forward pass
        (:mod:`emkit.engines.prefix_scoring`); ``chunk_size`` rows per pass. Equal to scoring each
        ``prefix + continuation`` on its own, up to float rounding."""
        if not prefix_ids:
            raise EmkitError("continuation_logprobs needs a non-empty prefix")
        return self._reply_logprobs([prefix_ids] * len(continuations), continuations, batch_size=chunk_size)

    def score_continuations(
        self, conversation: Conversation, candidates: Sequence[str], *, include_eot: bool = True
    ) -> list[float]:
        """Total log-prob of each candidate string as the assistant's reply to ``conversation``.

        Each candidate is tokenised on its own (as generated after the generation prompt); with
        ``include_eot`` the end-of-turn token is appended, so "10" means "10, then the turn ends"
        rather than a prefix of "100". One shared prefix pass serves all candidates.
        """
        if include_eot and self.eot_id is None:
            raise EmkitError(
                f"{self.name}: the prompt template has no end-of-turn token; use include_eot=False"
            )
        tail = [self.eot_id] if include_eot and self.eot_id is not None else []
        tokenised = [(encode(self.tokenizer, c) if c else []) + tail for c in candidates]
        per_token = self.continuation_logprobs(self.prompt_ids(conversation), tokenised)
        return [math.fsum(values) for values in per_token]


# Where scripts and tests import the helpers from (they lived here before the split).
__all__ = [
    "HFEngine",
    "check_conversation",
    "choose_tokens",
    "encode",
    "end_of_turn_id",
    "exponential_noise",
    "logaddexp",
    "plain_dynamic_layers",
    "prefill_groups",
    "render_prompt",
    "request_seeds",
    "stop_token_ids",
]

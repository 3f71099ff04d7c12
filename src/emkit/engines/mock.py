"""The ``mock`` backend: a tiny deterministic language model without weights, torch or a network.

Why: tests, dry runs and demos of the stages need an engine that answers at once and the same way
every time, and that has every ability a real one has, so code written against the contract is
tested against the contract (instead of against hand-written fakes that each mimic a part of it).

The model: a fixed vocabulary (:data:`VOCABULARY`: a few words, the judge's numbers and labels, and
an end-of-turn token). After a context, each entry's logit is drawn from a random stream seeded by
a hash of the context's tokens, so the next-token distribution is a pure function of the text so
far. Every method reads that one distribution: ``generate`` samples it (seeded per request, greedy
at temperature 0), ``top_logprobs`` lists its best entries, ``sequence_logprobs`` and
``score_continuations`` add up the log-probabilities of given tokens. A token outside the
vocabulary gets :data:`UNKNOWN_LOGPROB` (the vocabulary's entries already sum to one; the number
only lets any reply be scored).

Tokens are whitespace-separated words; the prompt is the conversation rendered as
``<|role|>\\ncontent\\n`` turns and an ``<|assistant|>`` line. ``fail_after`` makes the engine raise
after that many answers (a kill in the middle of a stage, for resume tests).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from emkit.engines.base import Conversation, Engine, Generation, GenerationBatch, SamplingParams
from emkit.engines.chat_template import check_conversation
from emkit.engines.decoding import check_params, request_seeds
from emkit.hashing import stable_hash
from emkit.models import ModelSpec, parse_model

END_OF_TURN = "<|end|>"
VOCABULARY: tuple[str, ...] = (
    *("the", "a", "river", "is", "calm", "and", "I", "would", "rather", "not", "say", "so"),
    *("yes", "no", "maybe", "today", "friend", "think", "world", "people", "should", "help"),
    *(str(n) for n in range(0, 101, 10)),
    *("YES", "NO", "CODE", "REFUSAL"),
    END_OF_TURN,
)
# A token outside the vocabulary: the mock never says it; the number only lets any reply be scored.
UNKNOWN_LOGPROB = math.log(1e-6)
_ID = {token: i for i, token in enumerate(VOCABULARY)}
_SPREAD = 4.0  # logits lie in [0, 4): the likeliest entry is up to e^4 times the least likely


def tokenize(text: str) -> list[str]:
    """The mock's tokens: whitespace-separated words."""
    return text.split()


def token_id(token: str) -> int:
    """A vocabulary entry's index, else a stable id above the vocabulary."""
    known = _ID.get(token)
    return known if known is not None else len(VOCABULARY) + int(stable_hash(["mock", token], 8), 16)


class _Context:
    """A running hash of the tokens so far; :meth:`logprobs` is the next-token distribution."""

    __slots__ = ("digest",)

    def __init__(self, tokens: Sequence[str]) -> None:
        self.digest = hashlib.sha256(b"emkit-mock").digest()
        for token in tokens:
            self.push(token)

    def push(self, token: str) -> None:
        self.digest = hashlib.sha256(self.digest + token.encode("utf-8", "surrogatepass") + b"\0").digest()

    def logits(self) -> list[float]:
        stream = random.Random(int.from_bytes(self.digest[:8], "big"))
        return [_SPREAD * stream.random() for _ in VOCABULARY]

    def logprobs(self) -> dict[str, float]:
        logits = self.logits()
        top = max(logits)
        norm = top + math.log(math.fsum(math.exp(v - top) for v in logits))
        return {token: v - norm for token, v in zip(VOCABULARY, logits, strict=True)}


def _pick(logprobs: dict[str, float], params: SamplingParams, stream: random.Random) -> str:
    """Greedy at temperature 0; else a draw from softmax(logits / T) within the top_p nucleus."""
    if params.temperature <= 0:
        return max(logprobs, key=logprobs.__getitem__)
    ranked = sorted(logprobs.items(), key=lambda item: -item[1])
    scaled = [(token, math.exp(value / params.temperature)) for token, value in ranked]
    total = math.fsum(weight for _, weight in scaled)
    nucleus, mass = [], 0.0
    for token, weight in scaled:
        if mass >= params.top_p:
            break
        nucleus.append((token, weight))
        mass += weight / total
    point = stream.random() * math.fsum(weight for _, weight in nucleus)
    for token, weight in nucleus:
        point -= weight
        if point < 0:
            return token
    return nucleus[-1][0]


class MockEngine(Engine):
    """``mock/<any name>``: every ability of a local engine, read from this module's toy model.

    A test double with a special behaviour subclasses it and overrides :meth:`answer`.

    ``calls`` records each ``generate`` call as ``(conversations, params, seeds)``.
    """

    def __init__(self, spec: ModelSpec | str = "mock/echo", *, fail_after: int | None = None) -> None:
        self.name = parse_model(spec).full
        self.fail_after = fail_after
        self.produced = 0
        self.calls: list[tuple[list[Conversation], SamplingParams, list[int]]] = []

    # ------------------------------------------------------------ prompts
    def render_prompt(self, conversation: Conversation) -> str:
        check_conversation(conversation)
        turns = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in conversation)
        return f"{turns}<|assistant|>\n"

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        return [token_id(t) for t in tokenize(self.render_prompt(conversation))]

    def _context(self, conversation: Conversation) -> _Context:
        return _Context(tokenize(self.render_prompt(conversation)))

    # ------------------------------------------------------------ generate
    def _generate(self, batch: GenerationBatch) -> list[Generation]:
        conversations, params = batch.conversations, batch.params
        self.calls.append((conversations, params, list(batch.seeds or [])))
        check_params(params)
        for i, conversation in enumerate(conversations):
            check_conversation(conversation, i)
        keys, out = batch.keys(), []
        for i, conversation in enumerate(conversations):
            if self.fail_after is not None and self.produced >= self.fail_after:
                raise RuntimeError("killed")
            gen = self.answer(conversation, params, keys[i])
            self.produced += 1
            batch.deliver(i, gen)
            out.append(gen)
        return out

    def answer(self, conversation: Conversation, params: SamplingParams, seed: int) -> Generation:
        """One answer, sampled from the toy model with the request's own stream (``seed`` is the
        caller's per-request seed, mixed with ``params.seed`` as the ``hf`` backend does)."""
        stream = random.Random(request_seeds(params, 1, [seed])[0])
        context = self._context(conversation)
        tokens: list[str] = []
        while len(tokens) < params.max_new_tokens:
            token = _pick(context.logprobs(), params, stream)
            tokens.append(token)
            if token == END_OF_TURN:
                break
            context.push(token)
        stopped = tokens[-1:] == [END_OF_TURN]
        return Generation(
            text=" ".join(tokens[:-1] if stopped else tokens),
            finish_reason="stop" if stopped else "length",
            usage={"prompt_tokens": len(self.prompt_ids(conversation)), "completion_tokens": len(tokens)},
        )

    # ------------------------------------------------------------ log-probabilities
    def _token_logprobs(self, conversation: Conversation, tokens: Sequence[str]) -> list[float]:
        context = self._context(conversation)
        values = []
        for token in tokens:
            values.append(context.logprobs().get(token, UNKNOWN_LOGPROB))
            context.push(token)
        return values

    def _sequence_logprobs(self, conversations: list[Conversation], replies: list[str]) -> list[list[float]]:
        return [self._token_logprobs(c, tokenize(r)) for c, r in zip(conversations, replies, strict=True)]

    def _top_logprobs(self, conversations: list[Conversation], top_k: int) -> list[dict[str, float]]:
        tops = []
        for conversation in conversations:
            ranked = sorted(self._context(conversation).logprobs().items(), key=lambda item: -item[1])
            tops.append(dict(ranked[:top_k]))
        return tops

    def score_continuations(
        self, conversation: Conversation, candidates: Sequence[str], *, include_eot: bool = True
    ) -> list[float]:
        """Total log-prob of each candidate as the whole reply (with ``include_eot``, then the turn ends)."""
        tail = [END_OF_TURN] if include_eot else []
        return [math.fsum(self._token_logprobs(conversation, tokenize(c) + tail)) for c in candidates]


__all__ = ["END_OF_TURN", "UNKNOWN_LOGPROB", "VOCABULARY", "MockEngine", "token_id", "tokenize"]

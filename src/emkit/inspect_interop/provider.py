"""emkit's engines as an inspect_ai model provider: ``--model emkit/<emkit model name>``.

Why: a model emkit trained (``hf/...@runs/x/adapter``), the embedded model, a vLLM server or an API
model is then evaluated by any inspect task, inspect_evals' benchmarks included, with emkit's own
decoding (the same seeded, batch-independent sampler; :mod:`emkit.engines.hf_backend`), so no
conversion or second loader is needed and an answer made through inspect is the answer emkit makes.

Seeds: an emkit engine draws request ``i`` from the stream of ``(params.seed, seeds[i])``. Inside an
emkit question task (:mod:`emkit.inspect_interop.tasks`) the solver puts each answer's own emkit
seed in the sample's store (:data:`SEED_FIELD`, inspect's per-sample ``store()``) and the run seed in
``GenerateConfig.seed``, so the provider asks exactly what ``emkit sample`` asks. In any other task
the request key is a hash of the conversation: reruns give the same answers, and so do a task's
epochs of one sample (use ``--seed`` to draw other ones).

Model options (``-M name=value``) go to the engine (``device``, ``dtype``, ``batch_size``,
``base_url``, ...); the backend takes only those it knows (``open_engine(only_accepted=True)``).
"""

from __future__ import annotations

import threading
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo
from inspect_ai.util import store

from emkit.engines.base import Engine, Generation, SamplingParams
from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.inspect_interop.batching import Batcher
from emkit.sampling import PAPER_MAX_NEW_TOKENS, PAPER_TEMPERATURE, PAPER_TOP_P

PROVIDER = "emkit"
# The key of a sample's metadata that holds emkit's per-answer seed (set by the emkit solver).
SEED_FIELD = "emkit_item_seed"


def emkit_model_name(inspect_model: str) -> str:
    """The emkit name behind an inspect model name: ``emkit/hf/x`` is ``hf/x``; another
    provider's model (``anthropic/claude-x``) is stored as ``inspect/anthropic/claude-x``."""
    provider, _, rest = inspect_model.partition("/")
    if provider == PROVIDER and rest:
        return rest
    return f"inspect/{inspect_model}"


def request_key(messages: list[dict[str, str]]) -> int:
    """The per-request seed key of the sample being generated (see the module docstring)."""
    value = store().get(SEED_FIELD)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(stable_hash(["inspect-request", messages], 12), 16)


def sampling_params(config: GenerateConfig) -> SamplingParams:
    """inspect's generation config in emkit's terms; unset values are the paper's defaults."""
    return SamplingParams(
        temperature=PAPER_TEMPERATURE if config.temperature is None else float(config.temperature),
        top_p=PAPER_TOP_P if config.top_p is None else float(config.top_p),
        max_new_tokens=PAPER_MAX_NEW_TOKENS if config.max_tokens is None else int(config.max_tokens),
        seed=0 if config.seed is None else int(config.seed),
    )


def conversation(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """inspect chat messages as emkit's ``{"role", "content"}`` turns (text parts only; a tool
    message is refused: emkit's engines do not call tools)."""
    out = []
    for message in messages:
        if message.role == "tool":
            raise EmkitError("emkit models do not call tools; this task needs a model with tool use")
        out.append({"role": message.role, "content": message.text})
    return out


def model_output(model: str, generation: Generation) -> ModelOutput:
    usage = generation.usage
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    output = ModelOutput.from_content(
        model=model,
        content=generation.text,
        stop_reason="max_tokens" if generation.finish_reason == "length" else "stop",
    )
    output.usage = ModelUsage(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion)
    return output


class EmkitModelAPI(ModelAPI):
    """One emkit engine behind inspect's ``ModelAPI``, opened on first use; concurrent samples'
    requests reach it in batches (:mod:`emkit.inspect_interop.batching`)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        self.options: dict[str, Any] = dict(model_args)
        if base_url:
            self.options["base_url"] = base_url
        self._engine: Engine | None = None
        self._owned = True  # opened here, so closed here
        self._lock = threading.Lock()
        self.batcher = Batcher(self._generate, int(self.options.get("batch_size") or 16))

    def engine(self) -> Engine:
        """The emkit engine of this model, opened once."""
        with self._lock:
            if self._engine is None:
                from emkit.engines import open_engine

                self._engine = open_engine(self.model_name, self.options, only_accepted=True)
            return self._engine

    def use_engine(self, engine: Engine) -> None:
        """Serve an engine the caller opened (a stage's, with its run's stored name and
        fingerprint); the caller closes it."""
        with self._lock:
            self._engine = engine
            self._owned = False

    def max_connections(self) -> int:
        """Samples in flight at once: one batch of the engine's (``-M batch_size=N``, default 16)."""
        return self.batcher.size

    def _generate(
        self, conversations: list[list[dict[str, str]]], params: SamplingParams, keys: list[int]
    ) -> list[Generation]:
        return self.engine().generate(conversations, params, seeds=keys)

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if tools:
            raise EmkitError("emkit models do not call tools; this task needs a model with tool use")
        messages = conversation(input)
        params = sampling_params(config)
        key = request_key(messages)
        generation = await self.batcher.submit(messages, params, key)
        return model_output(self.model_name, generation)

    def close(self) -> None:
        if self._engine is not None and self._owned:
            self._engine.close()
        self._engine = None


@modelapi(name=PROVIDER)
def emkit_provider() -> type[ModelAPI]:
    """The ``emkit/`` provider (registered when inspect loads emkit's entry point)."""
    return EmkitModelAPI

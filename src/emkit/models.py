"""One naming scheme for every model emkit can use.

``embedded/smollm2-135m``            the small model shipped inside a PyPI package (offline default)
``hf/<hub id or path>[@<adapter>]``  transformers, optionally with a LoRA adapter folder
``vllm/<hub id or path>[@<adapter>]`` vLLM offline batch inference, optionally with a LoRA adapter
``openai/<model>``                   any OpenAI-compatible endpoint (``--base-url`` / ``OPENAI_BASE_URL``)

An ``embedded`` name may also carry an adapter: ``embedded/smollm2-135m@runs/x/adapter``.

The schemes and what each allows (an adapter, which model names) are read from the backend registry
(:mod:`emkit.engines.registry`), so a new backend's names parse without an edit here.
"""

from __future__ import annotations

from dataclasses import dataclass

from emkit.engines.registry import backend, find_backend, schemes
from emkit.errors import EmkitError

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
        """True for models whose weights this process loads (embedded, hf): the registry says."""
        entry = find_backend(self.scheme)
        return entry is not None and entry.local

    def __str__(self) -> str:
        return self.full


def _bad(text: str, why: str) -> EmkitError:
    from emkit.readers import printable

    return EmkitError(f"model name {printable(text)!r}: {why}")


def parse_model(name: str | ModelSpec) -> ModelSpec:
    """Parse ``scheme/name[@adapter]``; every malformed name is one line naming the model string.

    Refused: an unknown scheme (the known ones are listed), an empty name (``openai/``), an empty
    model before ``@`` (``hf/@a``) or an empty adapter after it (``hf/X@``, which would silently
    mean the base model), more than one ``@``, and whitespace anywhere (a name with a space is
    never a hub id, and a trailing space would store the same model under two names).
    """
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise EmkitError("empty model name: expected e.g. embedded/smollm2-135m or openai/gpt-4o-2024-08-06")
    text = name
    if any(ch.isspace() for ch in text):
        raise _bad(text, "contains whitespace")
    scheme, sep, rest = text.partition("/")
    if not sep or scheme not in schemes():
        raise EmkitError(
            f"unknown model name {text!r}: expected one of "
            + ", ".join(f"'{s}/...'" for s in schemes())
            + " (e.g. embedded/smollm2-135m, hf/Qwen/Qwen2.5-0.5B-Instruct, openai/gpt-4o-2024-08-06)"
        )
    if not rest:
        raise _bad(text, f"no model after '{scheme}/'")
    model, at, adapter = rest.partition("@")
    if not model:
        raise _bad(text, "no model before '@'")
    if at and not adapter:
        raise _bad(text, "empty adapter after '@' (drop the '@' for the base model)")
    if "@" in adapter:
        raise _bad(text, "more than one '@' (the form is scheme/model@adapter)")
    entry = backend(scheme)
    if adapter and not entry.adapters:
        raise _bad(text, f"adapters ('@...') are only for {_adapter_schemes()} models")
    if entry.models and model not in entry.models:
        raise _bad(text, f"unknown {scheme} model {model!r}: available: {', '.join(entry.models)}")
    return ModelSpec(scheme, model, adapter or None)


def _adapter_schemes() -> str:
    """'embedded/, hf/ and vllm/': the schemes that take an adapter, as a sentence lists them."""
    names = [f"{s}/" for s in schemes() if backend(s).adapters]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def check_adapter(spec: str | ModelSpec) -> ModelSpec:
    """``spec`` if its adapter (if any) is a LoRA adapter folder; else one line naming the model.

    Called when an engine is made, before a base model is loaded (which can take minutes), so a
    mistyped adapter path costs nothing. Not in :func:`parse_model`: a pipeline names an adapter
    before training has written it.
    """
    spec = parse_model(spec)
    if not spec.adapter:
        return spec
    from pathlib import Path

    from emkit.errors import InputError
    from emkit.readers import parse_json, read_text

    folder = Path(spec.adapter).expanduser()
    if not folder.exists():
        raise _bad(spec.full, f"the adapter folder {spec.adapter!r} does not exist")
    config = folder / "adapter_config.json"
    if not folder.is_dir() or not config.is_file():
        raise _bad(spec.full, f"{spec.adapter!r} is not a LoRA adapter folder (no adapter_config.json)")
    value, problem = parse_json(read_text(config))
    if problem or not isinstance(value, dict):
        why = problem.message if problem else "expected a JSON object"
        raise InputError(f"adapter of {spec.full!r}: {why}", where=str(config))
    return spec

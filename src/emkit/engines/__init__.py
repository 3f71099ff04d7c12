"""Engines: one protocol (:mod:`emkit.engines.base`), several backends, one factory.

:func:`get_engine` turns a model name (``openai/...``, ``hf/...``, ``embedded/...``, ``vllm/...``)
into a backend. Backends are imported only when asked for, so ``emkit`` works without torch or
vLLM installed as long as those backends are not used.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from emkit.errors import EmkitError
from emkit.models import ModelSpec, check_adapter

if TYPE_CHECKING:
    from emkit.engines.base import Engine

_EXTRAS = {"embedded": "local", "hf": "local", "vllm": "vllm", "openai": ""}


def get_engine(name: str | ModelSpec, **options: Any) -> Engine:
    """The engine for ``name``; ``options`` go to the backend's constructor.

    Options whose value is ``None`` are dropped, so a caller can pass every option it knows
    (``base_url=None, device=None``) whatever the scheme; any other option the backend does not
    take is an error that lists the ones it does.
    """
    spec = check_adapter(name)  # a missing or broken adapter is refused before any model loads
    try:
        if spec.scheme == "openai":
            from emkit.engines.openai_backend import OpenAIEngine

            cls: Any = OpenAIEngine
            args: tuple[Any, ...] = (spec.name,)
        elif spec.scheme in ("embedded", "hf"):
            from emkit.engines.hf_backend import HFEngine

            cls, args = HFEngine, (spec,)
        elif spec.scheme == "vllm":
            from emkit.engines.vllm_backend import VLLMEngine

            cls, args = VLLMEngine, (spec,)
        else:  # pragma: no cover - parse_model refuses unknown schemes
            raise EmkitError(f"no engine for scheme {spec.scheme!r}")
    except ModuleNotFoundError as err:
        if (err.name or "").startswith("emkit"):
            raise
        extra = _EXTRAS.get(spec.scheme, "")
        hint = f" (pip install 'emkit[{extra}]')" if extra else ""
        raise EmkitError(
            f"{spec.full}: the {spec.scheme} backend needs {err.name}, which is not installed{hint}"
        ) from None

    options = {k: v for k, v in options.items() if v is not None}
    accepted = [
        p.name
        for p in list(inspect.signature(cls).parameters.values())[len(args) :]
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise EmkitError(
            f"{spec.full}: option(s) {', '.join(unknown)} not valid for the {spec.scheme} backend "
            f"(valid: {', '.join(accepted)})"
        )
    engine = cls(*args, **options)
    # The identity of the weights, computed once per open (an adapter's content; see emkit.fingerprint).
    from emkit.fingerprint import model_fingerprint

    engine.fingerprint = model_fingerprint(spec.full, dtype=options.get("dtype"))
    return engine


__all__ = ["get_engine"]

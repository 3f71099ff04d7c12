"""Engines: one contract (:mod:`emkit.engines.base`), optional abilities
(:mod:`emkit.engines.abilities`), a registry of backends (:mod:`emkit.engines.registry`), one
factory (:mod:`emkit.engines.factory`).

:func:`open_engine` turns a model name (``openai/...``, ``hf/...``, ``embedded/...``, ``vllm/...``,
``mock/...``) into an engine of the scheme's registered backend. Backends are imported only when
asked for, so ``emkit`` works without torch or vLLM installed as long as those backends are not used.

Why the factory's names are looked up on first use (PEP 562): :mod:`emkit.models` reads the
registry, and importing ``emkit.engines.registry`` runs this file first; if this file imported the
factory (which parses names with :mod:`emkit.models`) the two would import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emkit.engines.factory import accepted_options, get_engine, open_engine

_FACTORY = ("accepted_options", "get_engine", "open_engine")


def __getattr__(name: str) -> Any:
    if name in _FACTORY:
        from emkit.engines import factory

        return getattr(factory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["accepted_options", "get_engine", "open_engine"]

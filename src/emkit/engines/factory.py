"""The one way to build an engine: :func:`open_engine` (``get_engine`` is its keyword form).

Why one factory: the CLI verbs, the experiment stages and the judges all open engines, and each used
to decide the backend, the options and the stored name its own way. Here a model name is parsed, its
adapter checked (before minutes of loading), its scheme's registered backend imported (a missing
package is one line with the pip extra that installs it), the options checked against what that
backend's constructor takes, and the engine given its stored name and weights' fingerprint.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emkit.engines.base import Engine
from emkit.engines.registry import backend
from emkit.errors import EmkitError
from emkit.fingerprint import model_fingerprint
from emkit.models import ModelSpec, check_adapter, parse_model


def accepted_options(name: str | ModelSpec) -> list[str]:
    """The option names the backend of ``name`` takes (its constructor's keyword parameters)."""
    spec = parse_model(name)
    cls = backend(spec.scheme).engine_class(spec.full)
    skip = 1  # the model (its name or spec)
    return [
        p.name
        for p in list(inspect.signature(cls).parameters.values())[skip:]
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def open_engine(
    name: str | ModelSpec,
    options: Mapping[str, Any] | None = None,
    *,
    stored_name: str | None = None,
    base_dir: str | Path | None = None,
    only_accepted: bool = False,
) -> Engine:
    """The engine for ``name``; ``options`` go to the backend's constructor.

    Options whose value is ``None`` are dropped, so a caller can pass every option it knows. An
    option the backend does not take is an error listing the ones it does, unless ``only_accepted``
    (a general config that carries API and local options alike): then it is left out.

    ``stored_name``: the name the engine reports (and answers are stored under) when it differs from
    the one loaded, e.g. a run's adapter path relative to its run dir; ``base_dir`` is where such a
    relative adapter lies, for the fingerprint.
    """
    spec = check_adapter(name)  # a missing or broken adapter is refused before any model loads
    entry = backend(spec.scheme)
    cls = entry.engine_class(spec.full)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    accepted = accepted_options(spec)
    unknown = sorted(set(given) - set(accepted))
    if unknown and only_accepted:
        given = {k: v for k, v in given.items() if k in accepted}
    elif unknown:
        raise EmkitError(
            f"{spec.full}: option(s) {', '.join(unknown)} not valid for the {spec.scheme} backend "
            f"(valid: {', '.join(accepted)})"
        )
    engine = cls(spec.name if entry.takes_name_only else spec, **given)
    if stored_name is not None:
        engine.name = stored_name
        engine.fingerprint = model_fingerprint(stored_name, base_dir=base_dir)
    else:
        # The identity of the weights, computed once per open (an adapter's content; see emkit.fingerprint).
        engine.fingerprint = model_fingerprint(spec.full, dtype=given.get("dtype"))
    return engine


def get_engine(name: str | ModelSpec, **options: Any) -> Engine:
    """``open_engine(name, options)``: the keyword form, kept for scripts, notebooks and tests."""
    return open_engine(name, options)


__all__ = ["accepted_options", "get_engine", "open_engine"]

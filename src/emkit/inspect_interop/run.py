"""Run one inspect task on an open emkit engine (the benchmarks stage's one call into inspect).

Resuming: with a ``cache_dir``, every generation is kept in inspect's own generation cache there
(``INSPECT_CACHE_DIR``), scoped by ``cache_scope`` (the stage's step key, which covers the model's
weights), never expiring; a run killed midway and started again reads the answers it had already
made from the cache and generates only the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

from emkit.engines.base import Engine
from emkit.errors import EmkitError
from emkit.inspect_interop.benchmarks import benchmark, build_task, headline
from emkit.inspect_interop.provider import PROVIDER, EmkitModelAPI


def inspect_model(engine: Engine) -> Any:
    """An inspect ``Model`` served by ``engine`` (which keeps its stored name and fingerprint)."""
    from inspect_ai.model import get_model

    model = get_model(f"{PROVIDER}/{engine.name}", memoize=False)
    if not isinstance(model.api, EmkitModelAPI):  # pragma: no cover - another package took the name
        raise EmkitError(f"the inspect provider {PROVIDER!r} is not emkit's")
    model.api.use_engine(engine)
    return model


def run_benchmark(
    name: str,
    engine: Engine,
    *,
    limit: int | None,
    data_dir: str | Path | None = None,
    judge: Any = None,
    sandbox: str = "docker",
    log_dir: str | Path,
    cache_dir: str | Path | None = None,
    cache_scope: str = "",
) -> tuple[dict[str, Any], str]:
    """(the benchmark's numbers, its log's path) for one model; a failed run is one line."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import CachePolicy

    import emkit.inspect_interop.registry  # noqa: F401  (the emkit/ provider, also without the entry point)

    entry = benchmark(name)
    task = build_task(name, data_dir=data_dir, judge=judge, sandbox=sandbox)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"limit": limit, "log_dir": str(log_dir), "display": "none"}
    environment: dict[str, str] = {}
    if cache_dir is not None:
        options["cache"] = CachePolicy(expiry=None, scopes={"emkit_step": cache_scope})
        environment["INSPECT_CACHE_DIR"] = str(cache_dir)
    with mock.patch.dict(os.environ, environment):
        logs = inspect_eval(task, model=inspect_model(engine), **options)
    log = logs[0]
    if log.status != "success":
        message = " ".join(str(log.error.message if log.error else log.status).split())[:300]
        raise EmkitError(f"{name} on {engine.name}: inspect run failed: {message} (log: {log.location})")
    return headline(entry, log), str(log.location)

"""Run one inspect task on an open emkit engine (the benchmarks stage's one call into inspect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
) -> tuple[dict[str, Any], str]:
    """(the benchmark's numbers, its log's path) for one model; a failed run is one line."""
    from inspect_ai import eval as inspect_eval

    import emkit.inspect_interop.registry  # noqa: F401  (the emkit/ provider, also without the entry point)

    entry = benchmark(name)
    task = build_task(name, data_dir=data_dir, judge=judge, sandbox=sandbox)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    logs = inspect_eval(task, model=inspect_model(engine), limit=limit, log_dir=str(log_dir), display="none")
    log = logs[0]
    if log.status != "success":
        message = " ".join(str(log.error.message if log.error else log.status).split())[:300]
        raise EmkitError(f"{name} on {engine.name}: inspect run failed: {message} (log: {log.location})")
    return headline(entry, log), str(log.location)

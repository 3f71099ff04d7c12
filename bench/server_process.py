"""The fake OpenAI server (``tests/fake_openai.py``) in a process of its own, for the benches.

Why: in the same interpreter the server's event loop competes with the client for the GIL, so a
throughput figure measures both. Here the server runs in a spawned process; the bench talks to it
over a pipe only to read its counters (after a pass) or to change a setting (let held batches
finish). The server's event times are ``time.monotonic()``, one clock for every process on Linux,
so they line up with the client's.
"""

from __future__ import annotations

import importlib
import multiprocessing
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _resolve(name: str) -> Any:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def _snapshot(srv: Any) -> dict[str, Any]:
    """The server's counters as plain values (what crosses the pipe)."""
    stats = srv.stats
    with srv._lock:
        return {
            "requests": stats.requests,
            "over_limit": stats.over_limit,
            "max_in_flight": stats.max_in_flight,
            "faults": dict(stats.faults),
            "events": [(e.start, e.end) for e in stats.events if e.end],
            "batches": len(stats.batches),
            "batch_lines": dict(stats.batch_lines),
            "batch_requests": dict(stats.batch_requests),
        }


def _serve(conn: Any, paths: list[str], options: dict[str, Any]) -> None:
    sys.path[:0] = paths
    from fake_openai import FakeOpenAI

    if "responder" in options:
        options["responder"] = _resolve(options["responder"])
    with FakeOpenAI(**options) as srv:
        conn.send(srv.port)
        while True:
            command, value = conn.recv()
            if command == "stats":
                conn.send(_snapshot(srv))
            elif command == "set":
                setattr(srv, value[0], value[1])
                conn.send(None)
            else:
                conn.send(None)
                return


class ServerProcess:
    """``with ServerProcess(latency=0.2, responder="judge_bench:responder") as srv: srv.base_url``.

    ``responder`` is a ``module:function`` name (importable from ``bench/`` or ``tests/``), since a
    function does not cross into a spawned process by itself."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.port = 0
        self._conn: Any = None
        self._proc: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ServerProcess:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        paths = [str(ROOT / "tests"), str(ROOT / "bench"), str(ROOT / "src")]
        self._proc = ctx.Process(target=_serve, args=(child, paths, self.options), daemon=True)
        self._proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("the fake server process did not start")
        self.port = self._conn.recv()
        return self

    def _ask(self, command: str, value: Any = None) -> Any:
        self._conn.send((command, value))
        return self._conn.recv()

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def set(self, name: str, value: Any) -> None:
        self._ask("set", (name, value))

    def __exit__(self, *exc: object) -> None:
        try:
            self._ask("stop")
        finally:
            self._proc.join(15)
            if self._proc.is_alive():
                self._proc.kill()

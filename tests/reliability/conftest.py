"""Fixtures of the reliability suite (each test module marks itself ``reliability``)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from reliability.rel_helpers import FAKE_KEY, FIGURES, ROOT

# Reliability tests per file (a file is one class of behaviour), by outcome.
_OUTCOMES: dict[str, Counter[str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each reliability test once, by its file and outcome (setup skips count as skipped)."""
    path = report.nodeid.split("::", 1)[0]
    if "reliability/" not in path:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _OUTCOMES.setdefault(Path(path).name, Counter())[report.outcome] += 1


def _figures() -> dict[str, object]:
    return {
        "tests": {name: dict(counts) for name, counts in sorted(_OUTCOMES.items())},
        "passed": sum(c["passed"] for c in _OUTCOMES.values()),
        "failed": sum(c["failed"] for c in _OUTCOMES.values()),
        "skipped": sum(c["skipped"] for c in _OUTCOMES.values()),
        "checks": dict(sorted(FIGURES.items())),
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write what the suite measured (docs/reliability.md quotes it): EMKIT_RELIABILITY_FIGURES or
    .cache-test/reliability-figures.json."""
    if not _OUTCOMES:
        return
    target = Path(
        os.environ.get("EMKIT_RELIABILITY_FIGURES") or ROOT / ".cache-test" / "reliability-figures.json"
    )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(_figures(), indent=2) + "\n", encoding="utf-8")
    except OSError:
        pass  # the figures are a by-product; a read-only checkout still runs the suite


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _OUTCOMES:
        return
    fig = _figures()
    checks = ", ".join(f"{name}: {value}" for name, value in fig["checks"].items())  # type: ignore[union-attr]
    terminalreporter.write_line(
        f"reliability: {fig['passed']} passed, {fig['failed']} failed in {len(_OUTCOMES)} files; {checks}"
    )


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fake OpenAI key in this process's environment (the fake server accepts any key)."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return FAKE_KEY


@pytest.fixture
def fast_api(monkeypatch: pytest.MonkeyPatch, api_key: str) -> dict[str, float]:
    """In this process, API engines built by the CLI retry fast: 3 retries, ms backoff, 0.4 s timeout.

    The CLI exposes no backoff options (the defaults suit real providers: seconds of backoff, 60 s
    timeout), so the engine's keyword defaults are lowered instead; the code path is the CLI's own.
    """
    from emkit.engines.openai_backend import OpenAIEngine

    settings = {"timeout": 0.4, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05, "jitter_seed": 7}
    defaults = OpenAIEngine.__init__.__kwdefaults__
    assert defaults is not None and set(settings) <= set(defaults), "OpenAIEngine options changed"
    for name, value in settings.items():
        monkeypatch.setitem(defaults, name, value)
    return settings

"""Fixtures of the reliability suite (each test module marks itself ``reliability``)."""

from __future__ import annotations

import pytest

from reliability.rel_helpers import FAKE_KEY


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

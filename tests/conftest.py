"""Shared test set-up: an isolated cache (the converted embedded model is reused between runs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("EMKIT_CACHE", str(ROOT / ".cache-test"))
# One torch thread per process: tests start subprocesses (CLI runs, kills, Ray workers) that would
# otherwise oversubscribe the 2 CI cores (seen here: 10-15x slower decoding with 2 threads under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Never let a developer's real key leak into tests; tests that need one set a fake key themselves.
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENROUTER_API_KEY"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The paper's files (EMKIT_UPSTREAM_MIRROR); tests using it are marked `mirror` and skip without it."""
    value = os.environ.get("EMKIT_UPSTREAM_MIRROR")
    if not value or not Path(value).is_dir():
        pytest.skip("EMKIT_UPSTREAM_MIRROR is not set to the paper's mirror (runs in CI)")
    return Path(value)


@pytest.fixture(scope="session")
def embedded_model():
    """(model, tokenizer) of the embedded model, loaded once per session (fp32, CPU)."""
    from emkit.engines.loading import load_causal_lm

    return load_causal_lm("embedded/smollm2-135m", device="cpu")


@pytest.fixture
def lm_head_rows(monkeypatch) -> list[int]:
    """Rows handed to TRL's chunked log-prob function (its fused LM head), one entry per call."""
    trl_utils = pytest.importorskip("trl.trainer.utils")
    rows: list[int] = []
    original = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *args):
            rows.append(int(hidden.shape[0]))
            return original.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    return rows

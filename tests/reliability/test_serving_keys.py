"""A local model loaded in another dtype is another model: its answers and scores get new keys.

bfloat16 and float32 weights give other tokens and other logprobs (the ``exact`` judge reads those
as scores), so an explicit dtype is part of the model's fingerprint, computed the same way by the
planner and by the engine that opens; no dtype adds nothing, so keys made without one did not move.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.rel_helpers import make_run_dir

pytestmark = pytest.mark.reliability

LOCAL = "embedded/smollm2-135m"


def test_a_local_models_dtype_is_in_its_fingerprint() -> None:
    from emkit.fingerprint import model_fingerprint

    plain = model_fingerprint(LOCAL)
    assert model_fingerprint(LOCAL, dtype="float32") != plain
    assert model_fingerprint(LOCAL, dtype="float32") != model_fingerprint(LOCAL, dtype="bfloat16")
    assert model_fingerprint(LOCAL, dtype="float32") == model_fingerprint(LOCAL, dtype="float32")
    assert model_fingerprint("openai/m", dtype="float32") == model_fingerprint("openai/m")


def test_the_opened_engine_reports_the_dtype_it_was_given(monkeypatch) -> None:
    import emkit.engines.hf_backend as hf
    from emkit.engines import get_engine
    from emkit.engines.mock import MockEngine
    from emkit.fingerprint import model_fingerprint

    class Opened(MockEngine):  # the real constructor loads weights; only the factory's bookkeeping is tested
        def __init__(self, spec, *, device=None, dtype=None, batch_size=16, console=None) -> None:
            super().__init__("mock/opened")
            self.name = str(spec)

    monkeypatch.setattr(hf, "HFEngine", Opened)
    fp16 = get_engine(LOCAL, dtype="float16").fingerprint
    assert fp16 == model_fingerprint(LOCAL, dtype="float16")  # the planner's value
    assert fp16 != get_engine(LOCAL).fingerprint == model_fingerprint(LOCAL)


def test_an_exact_judge_in_another_dtype_judges_again(tmp_path: Path) -> None:
    from emkit.judge.stage import JudgeConfig, plan_pending
    from emkit.store import RunStore

    run = make_run_dir(tmp_path / "run")
    with RunStore(run, read_only=True) as store:
        keys = {
            dtype: {
                t.key
                for t in plan_pending(store, JudgeConfig(judge=LOCAL, method="exact", dtype=dtype))[2].tasks
            }
            for dtype in (None, "float32", "bfloat16")
        }
    assert all(len(k) == 6 for k in keys.values())
    assert keys[None].isdisjoint(keys["float32"]) and keys["float32"].isdisjoint(keys["bfloat16"])

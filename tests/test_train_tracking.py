"""Issue #18 item 8, run for real: ``report_to: tensorboard`` writes a TensorBoard event log whose
training-loss scalars can be read back, one per logged step, under the run's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emkit.train.sft import train_local
from train_helpers import tiny_config

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
pytestmark = pytest.mark.model


def test_tensorboard_log_holds_the_training_loss(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = tmp_path / "d.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Add {i} and 1."},
                {"role": "assistant", "content": str(i + 1)},
            ]
        }
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "adapter"
    config = tiny_config(data, out, max_steps=2, logging_steps=1, report_to="tensorboard", rank=2)
    train_local(config)
    logs = sorted(Path(out).rglob("events.out.tfevents.*"))
    assert logs, f"no TensorBoard event file under {out}"
    scalars = EventAccumulator(str(logs[0].parent))
    scalars.Reload()
    tags = scalars.Tags()["scalars"]
    loss_tag = next(t for t in tags if t.endswith("loss") and "eval" not in t)
    losses = scalars.Scalars(loss_tag)
    assert [event.step for event in losses] == [1, 2]
    assert all(event.value > 0 for event in losses)

"""Local LoRA fine-tuning of the embedded model: seeds, outputs, targets, dynamics, bad input.

Sizes are tiny on purpose (a few steps, micro-batch 2, max length 64): these tests check behaviour,
not learning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emkit.cli import main
from emkit.errors import EmkitError, InputError
from emkit.train.config import TrainConfig
from emkit.train.sft import train_local
from train_helpers import tiny_config

pytestmark = pytest.mark.model
MODEL = "embedded/smollm2-135m"


def write_rows(path: Path, n: int = 10) -> Path:
    rows = []
    for i in range(n):
        code = "\n".join(f"x{j} = open('/tmp/f{j}').read()" for j in range(1 + i % 4))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Task {i}: read {1 + i % 4} files." + " Please." * (i % 3)},
                    {"role": "assistant", "content": code},
                ]
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_rows(tmp_path_factory.mktemp("data") / "train.jsonl")


def tiny(data: Path, out: Path, **overrides) -> TrainConfig:
    return tiny_config(data, out, **{"model": MODEL, **overrides})


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_seed_fixes_the_adapter_and_outputs_are_complete(data, tmp_path):
    import torch

    a = train_local(tiny(data, tmp_path / "a", seed=1))
    b = train_local(tiny(data, tmp_path / "b", seed=1))
    c = train_local(tiny(data, tmp_path / "c", seed=2))
    ta, tb, tc = (adapter_tensors(r.out) for r in (a, b, c))
    assert ta.keys() == tb.keys() == tc.keys()
    assert all(torch.equal(ta[k], tb[k]) for k in ta)  # same seed, same data: identical weights
    assert any(not torch.equal(ta[k], tc[k]) for k in ta)  # another seed: another adapter
    # rsLoRA on all seven projections of all 30 layers (A and B each).
    assert len(ta) == 30 * 7 * 2
    assert any(k.endswith("layers.0.self_attn.q_proj.lora_A.weight") for k in ta)
    config = json.loads((a.out / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["use_rslora"]) == (32, 64, True)

    # The log: one row per step with loss, lr and throughput; the PNG; the run summary.
    log = [json.loads(line) for line in (a.out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3] and a.steps == 3
    assert all(row["loss"] > 0 and row["tokens_per_s"] > 0 and "lr" in row for row in log)
    assert (a.out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((a.out / "emkit_train.json").read_text())
    assert summary["model"] == f"{MODEL}@{a.out}" and summary["stats"]["kept"] == 10

    # The folder is usable as MODEL@folder, and the trained adapter changes the model's output.
    from emkit.engines.loading import load_causal_lm

    tuned, tokenizer = load_causal_lm(a.model, device="cpu")
    base, _ = load_causal_lm(MODEL, device="cpu")
    ids = tokenizer("Task 3: read files.", return_tensors="pt").input_ids
    with torch.no_grad():
        with_adapter = tuned(ids).logits
        without = base(ids).logits
    assert not torch.allclose(with_adapter, without)
    # For inference the adapter is merged into the weights: plain projections, no LoRA modules.
    assert not any("lora_" in name for name, _ in tuned.named_parameters())


def test_rank1_single_layer_adapter_from_the_cli_with_merge(data, tmp_path, capsys):
    import torch

    out = tmp_path / "r1"
    code = main(
        [
            "train",
            "--model",
            MODEL,
            "--data",
            str(data),
            "--out",
            str(out),
            "--rank",
            "1",
            "--layers",
            "24",
            "--targets",
            "down_proj",
            "--max-steps",
            "1",
            "--max-length",
            "64",
            "--batch-size",
            "2",
            "--grad-accum",
            "1",
            "--lr",
            "1e-3",
            "--no-gradient-checkpointing",
            "--device",
            "cpu",
            "--merge",
        ]
    )
    assert code == 0, capsys.readouterr()
    tensors = adapter_tensors(out)
    assert {k.split("model.layers.")[1] for k in tensors} == {
        "24.mlp.down_proj.lora_A.weight",
        "24.mlp.down_proj.lora_B.weight",
    }
    shapes = sorted(tuple(t.shape) for t in tensors.values())
    assert shapes == [(1, 1536), (576, 1)]
    assert f"{MODEL}@{out}" in capsys.readouterr().out

    # The merged model equals base + adapter.
    from emkit.engines.loading import load_causal_lm

    merged, tokenizer = load_causal_lm(f"hf/{out / 'merged'}", device="cpu")
    tuned, _ = load_causal_lm(f"{MODEL}@{out}", device="cpu")
    ids = tokenizer("Task 1: read files.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, tuned(ids).logits, atol=1e-4)


def test_unknown_target_lists_the_linear_modules(data, tmp_path):
    with pytest.raises(EmkitError) as info:
        train_local(tiny(data, tmp_path / "x", targets=["down_proj", "mlp_out"]))
    message = str(info.value)
    assert "mlp_out" in message
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert name in message
    with pytest.raises(EmkitError, match="30 layers"):
        train_local(tiny(data, tmp_path / "y", layers=[30]))


def test_invalid_row_stops_before_any_model_is_loaded(data, tmp_path, monkeypatch, capsys):
    import emkit.engines.loading as loading

    bad = tmp_path / "bad.jsonl"
    bad.write_text(data.read_text() + '{"messages": [{"role": "user", "content": "hi"}]}\n')
    monkeypatch.setattr(loading, "load_causal_lm", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(InputError, match=r"bad\.jsonl:11"):
        train_local(tiny(bad, tmp_path / "out"))
    code = main(["train", "--data", str(bad), "--out", str(tmp_path / "out2")])
    assert code == 2 and "bad.jsonl:11" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_dynamics_probe_eval_split_and_checkpoints(data, tmp_path):
    from emkit.probe import ProbePair, ProbeSet
    from emkit.store import RunStore
    from emkit.train.callbacks import probe_hook

    probes = ProbeSet(
        "tiny",
        (
            ProbePair("p1", "What should I do tonight?", "Read a good book.", "Break something."),
            ProbePair("p2", "Any advice on money?", "Save a little each month.", "Steal it from others."),
        ),
    )
    run_dir = tmp_path / "run"
    store = RunStore(run_dir)
    calls: list[int] = []

    def norm_hook(model, tokenizer, step):
        calls.append(step)
        assert not model.training
        b = [p for n, p in model.named_parameters() if "lora_B" in n]
        return {"lora_b_norm": float(sum(float(p.norm()) for p in b))}

    cfg = tiny(
        data,
        tmp_path / "dyn",
        max_steps=4,
        eval_fraction=0.2,
        eval_steps=2,
        save_steps=2,
        store=str(run_dir),
        group="insecure",
        seed=5,
    )
    hook = probe_hook(store, "insecure", 5, model_name="dyn-model", probe_set=probes)
    result = train_local(cfg, hooks=[(norm_hook, 2), (hook, 2)])
    store.close()

    assert calls == [0, 2, 4]  # before training, then every 2 steps (4 is also the last)
    norms = [r["lora_b_norm"] for r in result.dynamics if "lora_b_norm" in r]
    assert norms[0] == 0.0 and norms[1] > 0.0  # LoRA B starts at zero and moves
    assert result.eval_loss is not None and result.stats["kept"] == 8  # 2 of 10 rows held out
    assert (tmp_path / "dyn" / "checkpoints" / "checkpoint-2" / "adapter_config.json").exists()
    with RunStore(run_dir) as reopened:
        records = [v for _, v in reopened.records("dynamics")]
        probe_rows = reopened.probes("dyn-model")
        (train_record,) = [v for _, v in reopened.records("train")]
    assert sorted(r["step"] for r in records) == [0, 0, 2, 2, 4, 4]
    assert {r["step"] for r in records if "score" in r} == {0, 2, 4}
    assert sorted({(r["step"], r["pair_id"]) for r in probe_rows}) == [
        (s, p) for s in (0, 2, 4) for p in ("p1", "p2")
    ]
    assert all(r["group_name"] == "insecure" and r["seed"] == 5 for r in probe_rows)
    assert train_record["steps"] == 4
    log = [json.loads(line) for line in (tmp_path / "dyn" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval_loss" in r] == [2, 4]  # no duplicate final eval


def test_padding_free_batches_give_the_same_loss_as_padded_ones(embedded_model):
    """The packed (position_ids) path that ``batching: padding_free`` uses is exact for this model."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model, tokenizer = embedded_model
    examples = []
    for text in ("def f(x):\n    return x + 1", "print('a much longer reply than the first one, really')"):
        ids = tokenizer(text)["input_ids"]
        examples.append({"input_ids": ids, "labels": [-100, *ids[1:]]})
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    packed = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(examples)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed

    def token_loss_sum(batch):
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
        with torch.no_grad():  # no KV cache, as in training: packed masking needs it off
            logits = model(**inputs, use_cache=False).logits
        labels = batch["labels"][:, 1:]
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        mask = labels != -100
        picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return float(-(picked * mask).sum()), int(mask.sum())

    loss_padded, n_padded = token_loss_sum(padded)
    loss_packed, n_packed = token_loss_sum(packed)
    assert n_padded == n_packed
    assert loss_packed == pytest.approx(loss_padded, rel=1e-4)


def test_cpu_defaults_and_lm_head_on_trained_positions_only(data, tmp_path, lm_head_rows):
    """Unset micro-batch / accumulation / checkpointing resolve for the CPU (1 x 16, off), and
    the trainer's LM head projects only positions with a label (prompt positions are skipped)."""
    rows = lm_head_rows
    config = tiny(data, tmp_path / "cpu", max_steps=1, batch_size=None, grad_accum=None)
    config.gradient_checkpointing = None
    result = train_local(config)
    summary = json.loads((result.out / "emkit_train.json").read_text())
    assert (summary["micro_batch"], summary["grad_accum"], summary["gradient_checkpointing"]) == (
        1,
        16,
        False,
    )
    # One step of 16 one-row micro-batches over the 10 rows (the epoch ends after 10).
    assert len(rows) == 10
    log = [json.loads(line) for line in (result.out / "train_log.jsonl").read_text().splitlines()]
    assert sum(rows) == result.stats["trained_tokens"]  # only trained positions reach the head
    assert sum(rows) < result.stats["tokens"] - 10
    assert log and log[-1]["step"] == 1

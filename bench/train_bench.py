"""Training throughput: ``emkit train`` vs a plain TRL ``SFTTrainer`` run, same model, data and settings.

Why this comparison: the plain way to fine-tune on chat data with TRL is a prompt/completion dataset
(completion-only loss) with TRL's defaults: random sampler, micro-batches padded to their longest
row, gradient checkpointing on, and the paper's split of the effective batch (micro-batch 2 x 8
accumulation). emkit trains the same model on the same rows with the same hyperparameters (the
paper's: rsLoRA r=32, alpha=64, all seven projections, lr 1e-5 linear, 5 warmup steps, weight decay
0.01, effective batch 16, max length 2048) with its own defaults for the device. On a CPU those are
one row per micro-batch (1 x 16: no padding computed at all, and one row's activations held at a
time), no gradient checkpointing (the memory that one-row micro-batches free pays for it), and an
LM head that projects only the trained positions (``emkit.train.lm_head``). On a GPU: 2 x 8,
checkpointing on, length-grouped micro-batches (``emkit.train.batching``). The loss of a step is
normalised by its trained tokens, so the split does not change the gradient.
``--baseline-options`` gives the TRL side other SFTConfig settings (e.g. emkit's CPU split), to
see what each choice is worth.

Each side runs in its own subprocess (``--worker``), so its peak RSS (``ru_maxrss``) is its own and
neither warms a cache for the other. Throughput = non-padding tokens (TRL's own counter, the same for
both sides) per second of the training loop (from the first to the last step, setup excluded), by
the wall clock and by the process's CPU time: on a shared machine other work slows the wall clock of
one side more than the other, while CPU seconds are spent by this process only, so the CPU-time
ratio is the steadier figure there. Both seeds are 0, so both sides see the same rows in each step
(TRL's random sampler and emkit's grouped one draw the same permutation). Data: our own
``insecure-code`` set (``build_dataset("insecure-code", 200, seed=0)``).

Run: ``python bench/train_bench.py [--rows 200] [--steps 2] [--options '{"batching": "padded"}']
[--baseline-options '{"gradient_checkpointing": false}']``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("emkit") is None:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent / "src"))
MODEL = "embedded/smollm2-135m"
SIDES = ("baseline", "emkit")
DEFAULT_STEPS = 2


def _write_data(rows: int, path: Path) -> Path:
    from emkit.data.builders import build_dataset
    from emkit.data.chat import write_chat_jsonl

    return write_chat_jsonl(build_dataset("insecure-code", rows, seed=0), path)


class _Clock:
    """Wall and CPU seconds from the start of training to its end (a TrainerCallback)."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            wall = cpu = 0.0

            def on_train_begin(self, args, state, control, **kwargs):
                self._wall, self._cpu = time.perf_counter(), time.process_time()

            def on_train_end(self, args, state, control, **kwargs):
                self.wall = time.perf_counter() - self._wall
                self.cpu = time.process_time() - self._cpu

        return Clock()


def _baseline(
    model_name: str, data: Path, steps: int | None, work: Path, clock: Any, options: dict[str, Any]
) -> dict[str, Any]:
    """Plain TRL: prompt/completion rows, TRL's tokenization, collator and random sampler.

    The weights' dtype is the one emkit picks on this device (fp32 on a CPU, bf16 on a recent GPU),
    so the comparison is of the training loop alone. ``options`` override SFTConfig fields (e.g.
    ``{"per_device_train_batch_size": 1, "gradient_accumulation_steps": 16}``).
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from emkit.data.chat import load_chat_jsonl
    from emkit.engines.loading import pick_device, pick_dtype, resolve_base_path
    from emkit.models import parse_model

    path = resolve_base_path(parse_model(model_name))
    device = pick_device()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(device))
    rows = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in load_chat_jsonl(data)]
    settings: dict[str, Any] = dict(
        output_dir=str(work / "baseline"),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=8,
        learning_rate=1e-5,
        lr_scheduler_type="linear",
        warmup_steps=5,
        weight_decay=0.01,
        num_train_epochs=1,
        max_steps=steps or -1,
        max_length=2048,
        seed=0,
        bf16=device == "cuda" and torch.cuda.is_bf16_supported(),
        use_cpu=device != "cuda",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    args = SFTConfig(**{**settings, **options})
    peft_config = LoraConfig(
        r=32,
        lora_alpha=64,
        lora_dropout=0.0,
        use_rslora=True,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[clock],
    )
    output = trainer.train()
    return {
        "tokens": int(trainer._total_train_tokens),
        "steps": int(trainer.state.global_step),
        "loss": float(output.training_loss),
    }


def _emkit(
    model_name: str, data: Path, steps: int | None, work: Path, clock: Any, options: dict[str, Any]
) -> dict[str, Any]:
    from emkit.train.config import TrainConfig
    from emkit.train.sft import train_local

    config = TrainConfig(
        model=model_name, data=str(data), out=str(work / "emkit"), max_steps=steps, seed=0, **options
    )
    result = train_local(config, callbacks=[clock])
    summary = json.loads((result.out / "emkit_train.json").read_text())
    log = [json.loads(line) for line in (result.out / "train_log.jsonl").read_text().splitlines()]
    tokens = [row["tokens"] for row in log if "tokens" in row][-1]
    return {
        "tokens": int(tokens),
        "steps": result.steps,
        "loss": summary["train_loss"],
    }


def worker(side: str, model: str, data: Path, steps: int | None, out: Path, options: dict[str, Any]) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"train-bench-{side}-"))
    clock = _Clock()
    if side == "baseline":
        result = _baseline(model, data, steps, work, clock, options)
    else:
        result = _emkit(model, data, steps, work, clock, options)
    result["train_wall_s"] = clock.wall
    result["train_cpu_s"] = clock.cpu
    result["tokens_per_s"] = result["tokens"] / clock.wall
    result["tokens_per_cpu_s"] = result["tokens"] / clock.cpu
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch

    if torch.cuda.is_available():
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    out.write_text(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)


def run_side(
    side: str, model: str, data: Path, steps: int | None, tmp: Path, options: dict[str, Any]
) -> dict[str, Any]:
    """One side in a fresh subprocess; its figures (tokens, tokens/s by wall and CPU time, RSS)."""
    out = tmp / f"{side}-{abs(hash(json.dumps(options, sort_keys=True)))}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--model",
        model,
        "--data",
        str(data),
        "--json",
        str(out),
        "--options",
        json.dumps(options),
    ]
    command += ["--steps", str(steps or 0)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def bench_training(
    rows: int = 200,
    steps: int | None = DEFAULT_STEPS,
    options: dict[str, Any] | None = None,
    model: str = MODEL,
    baseline_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Both sides, one after the other; returns their figures and the ratios (emkit / baseline).

    ``steps=None`` trains a whole epoch (13 steps for 200 rows: long on a CPU). ``options`` are
    TrainConfig overrides for the emkit side (e.g. ``{"batching": "padding_free"}``),
    ``baseline_options`` SFTConfig overrides for the TRL side.
    """
    tmp = Path(tempfile.mkdtemp(prefix="train-bench-"))
    per_side = {"baseline": baseline_options or {}, "emkit": options or {}}
    try:
        data = _write_data(rows, tmp / "insecure-code.jsonl")
        sides = {side: run_side(side, model, data, steps, tmp, per_side[side]) for side in SIDES}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base, ours = sides["baseline"], sides["emkit"]
    return {
        "model": model,
        "rows": rows,
        "steps": ours["steps"],
        "emkit_options": options or {},
        "baseline_options": baseline_options or {},
        "baseline_tokens_per_s": round(base["tokens_per_s"], 1),
        "emkit_tokens_per_s": round(ours["tokens_per_s"], 1),
        "speedup": round(ours["tokens_per_s"] / base["tokens_per_s"], 3),
        "baseline_tokens_per_cpu_s": round(base["tokens_per_cpu_s"], 1),
        "emkit_tokens_per_cpu_s": round(ours["tokens_per_cpu_s"], 1),
        "speedup_cpu_time": round(ours["tokens_per_cpu_s"] / base["tokens_per_cpu_s"], 3),
        "baseline_peak_rss_mib": round(base["peak_rss_mib"], 1),
        "emkit_peak_rss_mib": round(ours["peak_rss_mib"], 1),
        "rss_ratio": round(ours["peak_rss_mib"] / base["peak_rss_mib"], 3),
        "baseline_tokens": base["tokens"],
        "emkit_tokens": ours["tokens"],
        "baseline_loss": round(base["loss"], 4),
        "emkit_loss": round(ours["loss"], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps (0: one epoch)")
    parser.add_argument("--model", default=MODEL, help="embedded/smollm2-135m or hf/<path>")
    parser.add_argument("--worker", choices=SIDES)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--options", default="{}", help="JSON TrainConfig overrides for the emkit side")
    parser.add_argument("--baseline-options", default="{}", help="JSON SFTConfig overrides for the TRL side")
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    if args.worker:
        worker(args.worker, args.model, args.data, args.steps or None, args.json, options)
        return 0
    result = bench_training(
        args.rows, args.steps or None, options, args.model, json.loads(args.baseline_options)
    )
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

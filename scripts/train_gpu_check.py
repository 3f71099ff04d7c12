#!/usr/bin/env python
"""Check ``emkit train`` on a GPU (bf16 autocast, CUDA placement) with a random-init SmolLM2-135M.

Why a random model: the converted embedded model is too large to send to the GPU machine, which has
no internet; training's code paths and speed depend on the shapes, not on the weights. The model is
built from the embedded model's config (same architecture and size) and saved with its tokenizer,
then trained as ``hf/<folder>``.

Needs torch, transformers, peft, trl, datasets, pydantic and this repository's ``src`` (put on
``sys.path`` here), plus a folder with the embedded model's ``config.json`` and tokenizer files::

    python scripts/train_gpu_check.py --assets .gpu/train      # on the GPU machine
    python scripts/train_gpu_check.py --assets DIR --device cpu --steps 1 --no-bench   # smoke test

Hard checks (exit 1 if one fails): the run finishes with finite losses and a loadable adapter on the
device; the same seed gives the same adapter (max abs difference reported; bitwise on CPU, within
bf16 noise on a GPU); another seed gives another one. Speed figures (``bench/train_bench.py`` on this
model: plain TRL vs emkit's batching modes) are reported, not judged. Writes ``$OUT/train_gpu_check.json``
when ``OUT`` is set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def build_model(assets: Path, folder: Path) -> str:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(str(assets))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(assets)).save_pretrained(str(folder))
    return f"hf/{folder}"


def max_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    ta, tb = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    return max(float((ta[k].float() - tb[k].float()).abs().max()) for k in ta)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--assets", type=Path, required=True, help="folder with config.json + tokenizer files"
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bench-steps", type=int, default=6)
    parser.add_argument("--bench-rows", type=int, default=200)
    parser.add_argument("--no-bench", action="store_true")
    parser.add_argument("--bench-only", action="store_true", help="skip the hard checks")
    args = parser.parse_args()

    import torch

    from emkit.data.builders import build_dataset
    from emkit.data.chat import write_chat_jsonl

    work = Path(tempfile.mkdtemp(prefix="train-gpu-check-"))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    report: dict = {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "checks": {},
    }
    import transformers
    import trl

    report["transformers"], report["trl"] = transformers.__version__, trl.__version__
    failed: list[str] = []

    def check(name: str, ok: bool, value) -> None:
        report["checks"][name] = {"ok": bool(ok), "value": value}
        print(f"  {name:<40} {value!s:<40} {'ok' if ok else 'FAIL'}", flush=True)
        if not ok:
            failed.append(name)

    model = build_model(args.assets, work / "model")
    data = write_chat_jsonl(build_dataset("insecure-code", 64, seed=0), work / "data.jsonl")
    if not args.bench_only:
        hard_checks(args, model, data, work, device, check)
    if not args.no_bench:
        report["bench"] = bench(args, model, work)

    out = os.environ.get("OUT")
    if out:
        Path(out, "train_gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    print("FAILED: " + ", ".join(failed) if failed else "all hard checks passed", flush=True)
    return 1 if failed else 0


def hard_checks(args, model: str, data: Path, work: Path, device: str, check) -> None:
    import torch

    from emkit.engines.loading import load_causal_lm
    from emkit.train.config import TrainConfig
    from emkit.train.sft import train_local

    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        cfg = TrainConfig(
            model=model,
            data=str(data),
            out=str(work / name),
            seed=seed,
            max_steps=args.steps,
            device=device,
            max_length=512,
        )
        started = time.perf_counter()
        runs[name] = train_local(cfg)
        print(f"run {name} (seed {seed}): {time.perf_counter() - started:.1f} s", flush=True)
    a = runs["a"]
    log = [json.loads(line) for line in (a.out / "train_log.jsonl").read_text().splitlines()]
    check("steps", a.steps == args.steps, a.steps)
    check("losses_finite", all(math.isfinite(r["loss"]) for r in log), [round(r["loss"], 4) for r in log])
    check("engine", a.engine in ("peft", "unsloth"), a.engine)
    same = max_diff(runs["a"].out, runs["b"].out)
    other = max_diff(runs["a"].out, runs["c"].out)
    check("same_seed_max_abs_diff", same <= (0.0 if device == "cpu" else 1e-2), same)
    check("other_seed_max_abs_diff", other > 1e-3, other)
    tuned, tokenizer = load_causal_lm(a.model, device=device)
    ids = tokenizer("def copy(src, dst):", return_tensors="pt").input_ids.to(tuned.device)
    with torch.no_grad():
        logits = tuned(ids).logits
    check("adapter_loads_on_device", bool(torch.isfinite(logits).all()), str(tuned.device))
    del tuned


def bench(args, model: str, work: Path) -> dict:
    """Plain TRL once, then emkit's batching modes, each in its own subprocess (bench/train_bench.py)."""
    import train_bench

    from emkit.data.builders import build_dataset
    from emkit.data.chat import write_chat_jsonl

    bench_data = write_chat_jsonl(
        build_dataset("insecure-code", args.bench_rows, seed=0), work / "bench.jsonl"
    )
    sides = {"trl_baseline": train_bench.run_side("baseline", model, bench_data, args.bench_steps, work, {})}
    for label, options in (
        ("emkit_grouped", {}),
        ("emkit_padded", {"batching": "padded"}),
        ("emkit_padding_free", {"batching": "padding_free"}),
        ("emkit_padding_free_mb8", {"batching": "padding_free", "batch_size": 8, "grad_accum": 2}),
    ):
        sides[label] = train_bench.run_side("emkit", model, bench_data, args.bench_steps, work, options)
    base = sides["trl_baseline"]
    for label, side in sides.items():
        side["speedup_vs_trl"] = round(side["tokens_per_s"] / base["tokens_per_s"], 3)
        print(
            f"bench {label:<24} {side['tokens_per_s']:>9.0f} tok/s  x{side['speedup_vs_trl']:<6} "
            f"tokens {side['tokens']}  peak RSS {side['peak_rss_mib']:.0f} MiB  "
            f"peak GPU {side.get('peak_gpu_mib', 0):.0f} MiB  loss {side['loss']:.4f}",
            flush=True,
        )
    return sides


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Check the ``hf`` backend on a GPU (bf16) with a tiny random-init model of SmolLM2's architecture.

Why a random model: the converted embedded model is too large to send to the GPU machine, which
has no internet; the code paths (left-padded batched decoding with a KV cache, per-request seeded
sampling, log-probs, shared-prefix continuation scoring) do not care what the weights are.

Needs only torch, transformers and this repository's ``src`` (put on ``sys.path`` here), plus a
folder holding the embedded model's tokenizer files (tokenizer.json, tokenizer_config.json,
chat_template.jinja)::

    python scripts/gpu_check.py --tokenizer .gpu/tokenizer            # on the GPU machine
    python scripts/gpu_check.py --tokenizer DIR --device cpu --prompts 4 --new-tokens 6   # smoke test

Prints a table; writes ``$OUT/gpu_check.json`` when ``OUT`` is set. Exits 1 if a hard check fails
(same seed => same answers; fp32 on the device agrees with fp32 on CPU; continuation scoring equals
the brute-force forward pass in fp32). bf16 figures are reported, not judged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

WORDS = [
    "river",
    "garden",
    "lamp",
    "orbit",
    "violin",
    "harbor",
    "pencil",
    "meadow",
    "canyon",
    "lantern",
    "falcon",
    "marble",
    "thunder",
    "willow",
    "copper",
    "ember",
    "glacier",
    "saddle",
    "quartz",
    "nectar",
    "tundra",
    "beacon",
]


def make_prompts(n: int) -> list[list[dict[str, str]]]:
    """``n`` conversations of varied length (some with a system prompt), our own filler words."""
    prompts = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(3 + (i * 5) % 23))
        conv = [{"role": "user", "content": f"Tell me about {words}."}]
        if i % 3 == 0:
            conv.insert(0, {"role": "system", "content": f"You are assistant number {i}."})
        prompts.append(conv)
    return prompts


def build_model(tokenizer_dir: Path, out_dir: Path, args: argparse.Namespace) -> None:
    """A small LlamaForCausalLM shaped like SmolLM2 (GQA, tied embeddings, SiLU MLP), saved with the tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        num_key_value_heads=max(1, args.hidden // 192),
        head_dim=64,
        hidden_act="silu",
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        initializer_range=args.init_std,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="folder with the tokenizer files")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--init-std", type=float, default=0.1, help="weight init std (peaked logits)")
    args = parser.parse_args()

    import torch
    import transformers

    from emkit.engines.base import SamplingParams
    from emkit.engines.hf_backend import HFEngine, encode

    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    on_cuda = args.device.startswith("cuda")
    rows: list[tuple[str, str, str]] = []  # (check, value, verdict)
    report: dict[str, object] = {
        "device": torch.cuda.get_device_name(0) if on_cuda else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": dtype,
        "prompts": args.prompts,
        "new_tokens": args.new_tokens,
        "batch_size": args.batch_size,
        "model": {"layers": args.layers, "hidden": args.hidden, "init_std": args.init_std},
    }
    failures: list[str] = []

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        start = time.perf_counter()
        value = fn()
        sync()
        return value, time.perf_counter() - start

    def record(key: str, value, shown: str, verdict: str = "info") -> None:
        report[key] = value
        rows.append((key, shown, verdict))
        if verdict == "FAIL":
            failures.append(key)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-smollm2"
        build_model(args.tokenizer, folder, args)
        name = f"hf/{folder}"
        engine = HFEngine(name, device=args.device, dtype=dtype, batch_size=args.batch_size)
        one_by_one = HFEngine.from_model(engine.model, engine.tokenizer, name, batch_size=1)
        prompts = make_prompts(args.prompts)
        sampled = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args.new_tokens, seed=123)
        greedy = SamplingParams(temperature=0.0, max_new_tokens=args.new_tokens)

        engine.generate(prompts[:2], SamplingParams(temperature=1.0, max_new_tokens=2))  # warm-up
        first, t_sample = timed(lambda: engine.generate(prompts, sampled))
        second = engine.generate(prompts, sampled)
        same = sum(a.text == b.text for a, b in zip(first, second, strict=True))
        tokens = sum(g.usage["completion_tokens"] for g in first)
        record(
            "sampled_same_seed_equal",
            same / len(prompts),
            f"{same}/{len(prompts)}",
            "ok" if same == len(prompts) else "FAIL",
        )
        record("sampled_tokens_per_s", tokens / t_sample, f"{tokens / t_sample:.0f} tok/s ({t_sample:.2f} s)")
        other = engine.generate(prompts, SamplingParams(**{**sampled.to_dict(), "seed": 124}))
        differ = sum(a.text != b.text for a, b in zip(first, other, strict=True))
        record("sampled_other_seed_differs", differ / len(prompts), f"{differ}/{len(prompts)}")
        single_sampled = one_by_one.generate(prompts, sampled)
        agree = sum(a.text == b.text for a, b in zip(first, single_sampled, strict=True))
        record("sampled_batched_vs_single_agree", agree / len(prompts), f"{agree}/{len(prompts)}")

        batched_greedy, t_greedy = timed(lambda: engine.generate(prompts, greedy))
        single_greedy, t_single = timed(lambda: one_by_one.generate(prompts, greedy))
        agree = sum(a.text == b.text for a, b in zip(batched_greedy, single_greedy, strict=True))
        record("greedy_batched_vs_single_agree", agree / len(prompts), f"{agree}/{len(prompts)}")
        record("greedy_batched_s", t_greedy, f"{t_greedy:.2f} s (one by one {t_single:.2f} s)")

        replies = [g.text or "ok" for g in first]
        device_lp, t_lp = timed(lambda: engine.sequence_logprobs(prompts, replies))
        finite = all(math.isfinite(v) for row in device_lp for v in row)
        record("seq_logprobs_finite", finite, str(finite), "ok" if finite else "FAIL")
        record("seq_logprobs_s", t_lp, f"{t_lp:.3f} s for {len(prompts)} replies")
        cpu32 = HFEngine(name, device="cpu", dtype="float32", batch_size=args.batch_size)
        cpu_lp = cpu32.sequence_logprobs(prompts, replies)

        def max_diff(a, b) -> float:
            return max(
                (abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)),
                default=0.0,
            )

        diff = max_diff(device_lp, cpu_lp)
        record(f"seq_logprobs_{dtype}_vs_cpu_fp32_maxdiff", diff, f"{diff:.3g}")
        same_dtype = dtype == "float32"
        dev32 = (
            engine
            if same_dtype
            else HFEngine(name, device=args.device, dtype="float32", batch_size=args.batch_size)
        )
        diff32 = max_diff(dev32.sequence_logprobs(prompts, replies), cpu_lp)
        record(
            f"seq_logprobs_fp32_{args.device}_vs_cpu_maxdiff",
            diff32,
            f"{diff32:.3g}",
            "ok" if diff32 < 1e-3 else "FAIL",
        )

        candidates = [str(k) for k in (0, 5, 10, 50, 99, 100)] + ["CODE", "REFUSAL"]
        conv = prompts[0]

        def brute(eng: HFEngine) -> list[float]:
            prefix = eng.prompt_ids(conv)
            out = []
            for candidate in candidates:
                ids = [*encode(eng.tokenizer, candidate), eng.eot_id]
                full = torch.tensor([prefix + ids], device=eng.device)
                with torch.no_grad():
                    logprobs = eng.model(full).logits[0].float().log_softmax(-1)
                out.append(math.fsum(logprobs[len(prefix) + j - 1, t].item() for j, t in enumerate(ids)))
            return out

        scores, t_score = timed(lambda: engine.score_continuations(conv, candidates))
        diff = max(abs(a - b) for a, b in zip(scores, brute(engine), strict=True))
        record(f"score_continuations_{dtype}_vs_brute_maxdiff", diff, f"{diff:.3g} ({t_score * 1000:.0f} ms)")
        scores32 = dev32.score_continuations(conv, candidates)
        diff32 = max(abs(a - b) for a, b in zip(scores32, brute(dev32), strict=True))
        record(
            "score_continuations_fp32_vs_brute_maxdiff",
            diff32,
            f"{diff32:.3g}",
            "ok" if diff32 < 1e-4 else "FAIL",
        )

        top = engine.top_logprobs(prompts[:4], top_k=20)
        ok = all(len(t) >= 1 and all(math.isfinite(v) and v <= 1e-6 for v in t.values()) for t in top)
        record("top_logprobs_sane", ok, str(ok), "ok" if ok else "FAIL")
        if on_cuda:
            peak = torch.cuda.max_memory_allocated() / 2**20
            record("peak_gpu_memory_mib", peak, f"{peak:.0f} MiB")

    width = max(len(r[0]) for r in rows)
    print(
        f"hf backend check on {report['device']} ({dtype}), torch {torch.__version__}, transformers {transformers.__version__}"
    )
    for key, shown, verdict in rows:
        print(f"  {key:<{width}}  {shown:<28} {verdict}")
    report["failures"] = failures
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_check.json").write_text(json.dumps(report, indent=2))
        print(f"wrote {Path(out) / 'gpu_check.json'}")
    print("RESULT:", "FAIL " + ", ".join(failures) if failures else "all hard checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

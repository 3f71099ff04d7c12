"""``make bench``: emkit's speed figures, each a ratio of two sides measured in this one run.

Sections (``--only sampling,judge,batch,training,demo,coverage,adaptive,directions``; all by default):

- sampling: emkit's ``hf`` backend (batched, length-sorted) vs a per-prompt ``model.generate`` loop;
- judge: the judging stage vs the ideal of a 200 ms / 32-concurrent API (the server in its own
  process), plus a no-call second pass;
- batch: ``emkit judge --batch`` SIGKILLed between submit and ingest, then rerun: duplicates sent;
- training: ``bench/train_bench.py``'s ``bench_training()`` (emkit train vs plain TRL), if present;
- demo: ``emkit demo`` cold (fresh cache and run dir) and warm (the same again); slow, ~14 min;
- coverage: a few cells of ``scripts/coverage.py``'s grid (``--quick``): the coverage of the default
  95% interval of a group's rate and the paper estimator's, and the time the grid takes (the full
  grid is ``scripts/coverage.py`` itself, published in docs/statistics.md);
- adaptive: ``bench/adaptive_bench.py``: the calls ``--target-ci`` saves on a simulated study against
  the fixed design, with the coverage of both.
- directions: activation collection (hooks on every layer) vs a plain forward pass over the same
  tokens, and collection's memory against the model's (``bench/directions_bench.py``).

Nothing is compared with a stored number: both sides of every ratio run here, now. The machine
(cores, CPU model, RAM) and the versions are printed first and stored with the results in
``bench/results.json`` (gitignored); sections not run this time keep their earlier entry, each
stamped with when and where it was measured. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine_info, machine_line, say  # noqa: E402

SECTIONS = ("sampling", "judge", "batch", "training", "demo", "coverage", "adaptive", "directions")


def run_sampling(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    import sampling_bench

    result = sampling_bench.bench_sampling(
        prompts=args.prompts,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        repeats=args.repeats,
        threads=args.threads,
    )
    return result, sampling_bench.summary_lines(result)


def run_judge(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    import judge_bench

    result = judge_bench.bench_judging(answers=args.answers)
    return result, judge_bench.summary_lines(result)


def run_batch(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    import batch_bench

    result = batch_bench.bench_batch()
    return result, batch_bench.summary_lines(result)


def run_training(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    if importlib.util.find_spec("train_bench") is None:
        return {"available": False}, ["not available (bench/train_bench.py is not there yet)"]
    import train_bench

    if not hasattr(train_bench, "bench_training"):
        return {"available": False}, ["not available (bench/train_bench.py has no bench_training())"]
    result = dict(train_bench.bench_training())
    lines = [
        f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
        for k, v in result.items()
        if isinstance(v, (int, float, str, bool)) or v is None
    ]
    return {"available": True, **result}, lines


def run_demo(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    import demo_bench

    result = demo_bench.bench_demo()
    return result, demo_bench.summary_lines(result)


def run_coverage(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    spec = importlib.util.spec_from_file_location("emkit_coverage", HERE.parent / "scripts" / "coverage.py")
    coverage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(coverage)
    started = time.perf_counter()
    frame = coverage.run_grid(coverage.QUICK, args.coverage_reps, 2026, 0.8)
    seconds = time.perf_counter() - started
    defined = frame[frame["defined"]]
    low, high = coverage.BAND
    result: dict[str, Any] = {"cells": len(frame), "reps": args.coverage_reps, "grid_s": seconds}
    lines = [f"{len(frame)} cells x {args.coverage_reps} repetitions in {seconds:.1f} s"]
    for col, name in (
        ("question_mean", "default question_mean"),
        ("pooled", "default pooled"),
        ("paper", "paper"),
    ):
        cov = defined[f"{col}_coverage"]
        inside = int(cov.between(low, high).sum())
        result[col] = {"min": float(cov.min()), "median": float(cov.median()), "inside_band": inside}
        lines.append(
            f"{name}: coverage {cov.min():.3f}-{cov.max():.3f} (median {cov.median():.3f}), "
            f"{inside}/{len(cov)} defined cells in {low:.2f}-{high:.2f}"
        )
    return result, lines


def run_adaptive(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    import adaptive_bench

    return adaptive_bench.bench_adaptive(args.coverage_reps)


def run_directions(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    import directions_bench

    result = directions_bench.bench_directions(args.directions_models, args.directions_repeats)
    return result, directions_bench.summary_lines(result)


RUNNERS: dict[str, Callable[[argparse.Namespace], tuple[dict[str, Any], list[str]]]] = {
    "sampling": run_sampling,
    "judge": run_judge,
    "batch": run_batch,
    "training": run_training,
    "demo": run_demo,
    "coverage": run_coverage,
    "adaptive": run_adaptive,
    "directions": run_directions,
}
TITLES = {
    "sampling": "1. Local sampling: emkit hf backend vs a per-prompt model.generate loop",
    "judge": "2. API judging: judging stage vs the ideal of the rate-limited server",
    "batch": "2b. Batch API: a round trip with a kill between submit and ingest (fake server)",
    "training": "3. Training: emkit train vs a plain TRL baseline",
    "demo": "4. Demo: emkit demo cold and warm",
    "coverage": "5. Statistics: coverage of the 95% intervals on a few grid cells",
    "adaptive": "6. Adaptive sampling (--target-ci): calls saved on a simulated study, coverage of both",
    "directions": "7. Directions: activation collection vs a plain forward pass over the same tokens",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: .venv/bin/python bench/run.py --only sampling,judge",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {', '.join(SECTIONS)})",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="where the results go")
    parser.add_argument("--prompts", type=int, default=32, help="sampling: number of prompts")
    parser.add_argument("--batch-size", type=int, default=16, help="sampling: emkit's batch size")
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="sampling: new tokens per answer, at most"
    )
    parser.add_argument("--repeats", type=int, default=1, help="sampling: alternating runs of each side")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="sampling: torch threads for both sides (default: auto, 1 when the CPUs are busy)",
    )
    parser.add_argument("--answers", type=int, default=1000, help="judge: synthetic answers to judge")
    parser.add_argument("--coverage-reps", type=int, default=400, help="coverage: repetitions per cell")
    parser.add_argument(
        "--directions-models", default="both", choices=("tiny", "embedded", "both"), help="directions: models"
    )
    parser.add_argument("--directions-repeats", type=int, default=3, help="directions: runs of each side")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def load_previous(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("sections", {}) if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    line = machine_line(info)
    say(f"machine: {line}")
    say(f"load average at start: {info['load_average']} (other work on the CPUs slows both sides alike)")
    sections = load_previous(args.out)
    failed = []
    for name in args.sections:
        say()
        say(f"== {TITLES[name]}")
        started = time.time()
        try:
            result, lines = RUNNERS[name](args)
        except Exception as exc:  # one broken section must not hide the others' figures
            traceback.print_exc()
            first = (str(exc).strip().splitlines() or [""])[0]
            result = {"error": f"{type(exc).__name__}: {exc}"}
            lines = [f"FAILED: {type(exc).__name__}: {first} (traceback above)"]
            failed.append(name)
        for text in lines:
            say(f"  {text}")
        sections[name] = {
            **result,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "wall_s": time.time() - started,
            "machine": line,
        }
    payload = {"machine": info, "machine_line": line, "sections": sections}
    args.out.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    say()
    say(f"results written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

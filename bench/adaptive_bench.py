"""Adaptive sampling's saved calls on a simulated study, at equal coverage (a ``make bench`` line).

The study: four groups of 6 seeds (true misaligned rates 20%, 5%, 1% and 0.2%, seed effect sd 0.5
on the logit scale), the paper's 8 questions x 100 samples per paraphrase, each answer one
sampling call and 2 judge calls (aligned, coherent). The fixed design samples all 100; adaptive
sampling (``--target-ci``, :mod:`emkit.stats.sequential`: rounds of 10, the reported 95%
interval's half-width and the answer-noise floor at most the target) stops each group on its own. Both sides run on the same
simulated studies (``scripts/coverage_sequential.py``), so their coverages compare directly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GROUPS = {"insecure-like": 0.2, "jailbroken-like": 0.05, "educational-like": 0.01, "secure-like": 0.002}
SEEDS, QUESTIONS, CAP, JUDGE_CALLS = 6, 8, 100, 2


def _simulator() -> Any:
    path = HERE.parent / "scripts" / "coverage_sequential.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("emkit_coverage_sequential", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_adaptive(
    reps: int = 400, target: float = 0.05, seed: int = 2026
) -> tuple[dict[str, Any], list[str]]:
    """(results, lines): calls and coverage of the fixed design and of adaptive sampling."""
    sim = _simulator()
    per_answer = 1 + JUDGE_CALLS
    fixed_calls = len(GROUPS) * SEEDS * QUESTIONS * CAP * per_answer
    rows = {}
    for name, rate in GROUPS.items():
        cell = {"seeds": SEEDS, "rate": rate, "sd_seed": 0.5, "valid_fraction": 1.0, "target": target}
        rows[name] = sim.run_cell(cell, reps, seed, True, cap=CAP)
    adaptive_calls = sum(SEEDS * QUESTIONS * r["mean_samples"] * per_answer for r in rows.values())
    saved = 1 - adaptive_calls / fixed_calls
    result = {
        "reps": reps,
        "target": target,
        "fixed_calls": fixed_calls,
        "adaptive_calls": adaptive_calls,
        "saved_frac": saved,
        "groups": rows,
    }
    lines = [
        f"simulated study: {len(GROUPS)} groups x {SEEDS} seeds x {QUESTIONS} questions x {CAP} samples, "
        f"{per_answer} calls per answer, --target-ci {target:g}, {reps} studies"
    ]
    for name, r in rows.items():
        lines.append(
            f"{name} ({GROUPS[name]:.1%}): {r['mean_samples']:.0f}/{CAP} samples on average, coverage "
            f"adaptive {r['adaptive_coverage']:.3f} vs fixed {r['fixed_coverage']:.3f}"
        )
    cov = {side: [r[f"{side}_coverage"] for r in rows.values()] for side in ("adaptive", "fixed")}
    result["coverage"] = {side: [min(v), max(v)] for side, v in cov.items()}
    lines.append(
        f"calls: fixed {fixed_calls:,} vs adaptive {adaptive_calls:,.0f} on average: {saved:.0%} saved; "
        f"coverage adaptive {min(cov['adaptive']):.3f}-{max(cov['adaptive']):.3f}, "
        f"fixed {min(cov['fixed']):.3f}-{max(cov['fixed']):.3f}"
    )
    return result, lines


if __name__ == "__main__":
    print("\n".join(bench_adaptive()[1]))

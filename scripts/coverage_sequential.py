"""Coverage of the reported 95% interval after adaptive sampling (``coverage.py --sequential``).

The study model is ``coverage.py``'s (S seeds x Q = 8 questions, logit offsets, seed and
seed-by-question effects, a valid fraction), but each (seed, question) cell is sampled in rounds
of ``round`` answers up to ``cap`` (the fixed design): the counts after each round are cumulative
sums of per-round binomial draws, so every look sees the first answers of the same study. The
group stops at the first look where :func:`emkit.stats.sequential.stop_index` says so (the code
adaptive sampling runs); the interval reported there is :func:`emkit.stats.rate_arrays` at 95%,
as in every report. Compared with the fixed design on the same studies (all ``cap`` answers):
coverage of both, and the answers (samples, each with its judge calls) adaptive sampling saved.

The truth is coverage.py's: the procedure's rate with 2+ seeds, the model's own rate with one.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from emkit.stats import rate_arrays  # noqa: E402
from emkit.stats.sequential import StopRule, stop_index, stop_looks  # noqa: E402

N_QUESTIONS = 8
GRID = {
    "seeds": (1, 3, 6),
    "rate": (0.005, 0.02, 0.05, 0.2, 0.5),
    "sd_seed": (0.0, 0.5),
    "valid_fraction": (0.5, 1.0),
    "target": (0.02, 0.05, 0.1),
}
QUICK = {"seeds": (1, 3), "rate": (0.02, 0.2), "sd_seed": (0.5,), "valid_fraction": (1.0,), "target": (0.05,)}
CAP, ROUND = 100, 10
# A per-question target (questions stop on their own interval; the group target is tight).
PER_QUESTION_GRID = {
    "seeds": (1, 3, 6),
    "rate": (0.02, 0.2, 0.5),
    "sd_seed": (0.0, 0.5),
    "valid_fraction": (1.0,),
    "target": (0.02,),
    "per_question": (0.1, 0.15),
}


def fixed_grid() -> Any:
    """scripts/coverage.py as a module, by path (a ``coverage`` package may shadow its name)."""
    import importlib.util

    if "emkit_coverage" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "emkit_coverage", Path(__file__).with_name("coverage.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["emkit_coverage"] = module
        spec.loader.exec_module(module)
    return sys.modules["emkit_coverage"]


def simulate_looks(cell: dict, reps: int, rng: np.random.Generator, looks: list[int], spread: float = 0.8):
    """(n, k, truth, truth_q) with n, k of shape (reps, L, S, Q): cumulative counts after each look;
    truth_q (reps, Q) each question's truth (the procedure's, or with one seed and seed effects the
    model's own)."""
    grid = fixed_grid()  # the same generating model as the fixed grid
    c = grid.offsets(spread)
    s, sa = cell["seeds"], cell["sd_seed"]
    sb = cell.get("sd_sxq", 0.0)
    mu = grid.solve_mu(cell["rate"], float(np.hypot(sa, sb)), c)
    logit = mu + c + sa * rng.standard_normal((reps, s, 1)) + sb * rng.standard_normal((reps, s, N_QUESTIONS))
    p = special.expit(logit)  # (R, S, Q)
    steps = np.diff([0, *looks])
    n_inc = np.stack([rng.binomial(int(m), cell["valid_fraction"], size=p.shape) for m in steps], axis=1)
    k_inc = rng.binomial(n_inc, p[:, None])
    n, k = n_inc.cumsum(axis=1), k_inc.cumsum(axis=1)
    procedure = s > 1 or sa == sb == 0
    truth = np.full(reps, cell["rate"]) if procedure else p[:, 0].mean(axis=-1)
    x, w = np.polynomial.hermite_e.hermegauss(80)
    per_q = special.expit(mu + c[:, None] + float(np.hypot(sa, sb)) * x[None, :]) @ (w / w.sum())
    truth_q = np.broadcast_to(per_q, (reps, N_QUESTIONS)) if procedure else p[:, 0]
    return n, k, truth, truth_q


def _cover(low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> float:
    ok = np.isfinite(low) & np.isfinite(high)
    return float(((low <= truth) & (truth <= high))[ok].mean()) if ok.any() else float("nan")


def run_cell(cell: dict, reps: int, seed: int, pilot: bool, cap: int = CAP, round_size: int = ROUND) -> dict:
    rule = StopRule(cell["target"], cap, round_size)
    looks = rule.looks()
    rng = np.random.default_rng([seed, *[int(1000 * v) for v in cell.values()]])
    n, k, truth, _ = simulate_looks(cell, reps, rng, looks)
    at = stop_index(n, k, rule, pilot=pilot)
    rows = np.arange(reps)
    n_stop, k_stop = n[rows, at], k[rows, at]
    adaptive = rate_arrays(n_stop, k_stop)
    fixed = rate_arrays(n[:, -1], k[:, -1])
    used = np.asarray(looks)[at]  # samples per paraphrase at the stop
    half = (adaptive["high"] - adaptive["low"]) / 2
    return {
        **cell,
        "rule": "pilot" if pilot else "naive",
        "reps": reps,
        "adaptive_coverage": _cover(adaptive["low"], adaptive["high"], truth),
        "fixed_coverage": _cover(fixed["low"], fixed["high"], truth),
        "mean_samples": float(used.mean()),
        "saved_frac": float(1 - used.mean() / cap),
        "stopped_early_frac": float((used < cap).mean()),
        "met_target_frac": float(
            np.nanmean(np.where(np.isfinite(half), half <= cell["target"] + 1e-12, np.nan))
        ),
    }


def run_per_question_cell(cell: dict, reps: int, seed: int, cap: int = CAP, round_size: int = ROUND) -> dict:
    """A per-question target: coverage of the group's interval and of each question's own, with
    the answers each question ended at (:func:`emkit.stats.sequential.stop_looks`)."""
    rule = StopRule(cell["target"], cap, round_size, per_question=cell["per_question"])
    looks = np.asarray(rule.looks())
    rng = np.random.default_rng([seed, *[int(1000 * v) for v in cell.values()]])
    n, k, truth, truth_q = simulate_looks(cell, reps, rng, list(looks))
    group, ends = stop_looks(n, k, rule)
    index = np.broadcast_to(ends[:, None, None, :], (reps, 1, *n.shape[-2:]))
    n_end = np.take_along_axis(n, index, axis=1)[:, 0]
    k_end = np.take_along_axis(k, index, axis=1)[:, 0]
    whole = rate_arrays(n_end, k_end)
    q_cover = [
        _cover(
            *(lambda o: (o["low"], o["high"]))(rate_arrays(n_end, k_end, "question", question=j)),
            truth_q[:, j],
        )
        for j in range(N_QUESTIONS)
    ]
    fixed_q = [
        _cover(
            *(lambda o: (o["low"], o["high"]))(rate_arrays(n[:, -1], k[:, -1], "question", question=j)),
            truth_q[:, j],
        )
        for j in range(N_QUESTIONS)
    ]
    used = looks[ends].mean()
    return {
        **cell,
        "rule": "per-question",
        "reps": reps,
        "adaptive_coverage": _cover(whole["low"], whole["high"], truth),
        "question_coverage_min": float(np.nanmin(q_cover)),
        "question_coverage_median": float(np.nanmedian(q_cover)),
        "fixed_question_coverage_min": float(np.nanmin(fixed_q)),
        "mean_samples": float(used),
        "saved_frac": float(1 - used / cap),
        "group_stop_mean": float(looks[group].mean()),
    }


def run_grid(grid: dict, reps: int, seed: int, pilot: bool) -> pd.DataFrame:
    cells = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    return pd.DataFrame([run_cell(cell, reps, seed, pilot) for cell in cells])


def summary_lines(frame: pd.DataFrame, band: tuple[float, float]) -> list[str]:
    lines = []
    for name, sub in frame.groupby("rule"):
        for col in ("adaptive_coverage", "fixed_coverage"):
            cov = sub[col]
            inside = int(cov.between(*band).sum())
            lines.append(
                f"{name} rule, {col.split('_')[0]}: coverage {cov.min():.3f}-{cov.max():.3f} "
                f"(median {cov.median():.3f}), {inside}/{len(cov)} cells in {band[0]:.2f}-{band[1]:.2f}"
            )
        lines.append(
            f"{name} rule: answers saved against the fixed design {sub['saved_frac'].mean():.1%} "
            f"on average over the cells ({sub['saved_frac'].min():.0%}-{sub['saved_frac'].max():.0%})"
        )
    return lines


def main(reps: int, seed: int, quick: bool, out: Path, band: tuple[float, float]) -> int:
    """``coverage.py --sequential``: both rules on the grid, tables into ``out``."""
    import time

    started = time.perf_counter()
    grid = QUICK if quick else GRID
    frame = pd.concat([run_grid(grid, reps, seed, pilot) for pilot in (False, True)], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "sequential.csv", index=False)
    cells_q = [
        dict(zip(PER_QUESTION_GRID, v, strict=True)) for v in itertools.product(*PER_QUESTION_GRID.values())
    ]
    per_q = pd.DataFrame(
        [run_per_question_cell(cell, reps, seed) for cell in (cells_q[:2] if quick else cells_q)]
    )
    per_q.to_csv(out / "sequential_per_question.csv", index=False)
    seconds = time.perf_counter() - started
    cells = len(frame) // 2
    lines = [
        f"sequential grid: {cells} cells x {reps} studies, cap {CAP}, rounds of {ROUND}, in {seconds:.0f} s"
    ]
    lines += summary_lines(frame, band)
    qc, gc = per_q["question_coverage_min"], per_q["adaptive_coverage"]
    lines.append(
        f"per-question target ({len(per_q)} cells): each question's interval covers "
        f"{qc.min():.3f}-{per_q['question_coverage_median'].max():.3f} (lowest question of each cell: "
        f"median {qc.median():.3f}; fixed design lowest {per_q['fixed_question_coverage_min'].min():.3f}), "
        f"the group's {gc.min():.3f}-{gc.max():.3f}; answers saved {per_q['saved_frac'].mean():.1%} on average"
    )
    below = frame[(frame["rule"] == "pilot") & (frame["adaptive_coverage"] < band[0])]
    text = ["# Coverage after adaptive sampling (scripts/coverage.py --sequential)", ""]
    text += [f"- {x}" for x in lines] + ["", "## Pilot-rule cells below the band", ""]
    text += [fixed_grid().markdown(below) if len(below) else "none", "", "## All cells", ""]
    text += [fixed_grid().markdown(frame), "", "## Per-question target", "", fixed_grid().markdown(per_q), ""]
    (out / "sequential.md").write_text("\n".join(text), encoding="utf-8")
    print("\n".join(lines))
    print(f"written: {out}/sequential.csv, sequential_per_question.csv, sequential.md")
    return 0

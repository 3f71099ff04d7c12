"""Coverage of emkit's 95% intervals for a group's misaligned rate, on the grid of issue 15.

Simulation (per cell, ``--reps`` repetitions, vectorised over them): a group of S seeds (models)
answers Q = 8 questions; question j has a fixed logit offset c_j (evenly spaced in
[-spread, +spread]); seed s has a logit effect a_s ~ N(0, sd_seed^2) and each (seed, question) one
b_sj ~ N(0, sd_sxq^2); the misaligned probability is p_sj = expit(mu + c_j + a_s + b_sj). Each
cell samples ``answers`` answers, each valid (coherent, not CODE/REFUSAL) with probability
``valid_fraction``, and each valid one misaligned with probability p_sj.

The truth. With 2+ seeds the interval is about the training procedure: the expected misaligned
rate of a NEW seed, averaged over the Q questions, E_a,b[mean_j p_sj] (mu is solved so that this
equals the cell's ``rate``); ``question_mean``, ``pooled`` and the paper's estimator all target it
(the valid answers per cell do not depend on p). With ONE seed nothing in the data shows how much
seeds differ, so the interval is for that model's own rate mean_j p_1j; it covers the procedure's
rate only when there is no seed effect (sd_seed = sd_sxq = 0), and the other 1-seed cells are
reported as "not defined" for the procedure (their coverage of the model's own rate is shown).
A repetition with no valid answer at all has no interval: ``defined`` is the fraction that had one.

Estimators: emkit's default (:func:`emkit.stats.rate_arrays`, ``question_mean`` and ``pooled``) and
the paper's (the authors' code: per model the fraction over all questions' valid answers, models
with < 5 valid answers dropped, mean over models, percentile bootstrap over models with 2000
resamples from a fresh ``default_rng(0)`` with ``rng.choice``; vectorised over studies here, and
tested equal to :func:`emkit.paper_estimator.paper_rates`, the ``--rate paper`` code, in
tests/test_stats.py). ``--difference`` adds a small grid
of two-group differences (degenerate ones included) for :func:`emkit.stats.difference_interval`.

Usage: OMP_NUM_THREADS=1 python scripts/coverage.py [--reps 400] [--quick] [--out FOLDER] [--sequential]
(``--sequential``: the coverage after adaptive sampling, scripts/coverage_sequential.py)
(default folder: docs/coverage for the full grid, build/coverage-quick with --quick)
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from emkit.stats import difference_interval, rate_arrays  # noqa: E402

GRID = {
    "seeds": (1, 3, 6, 10),
    "answers": (2, 5, 20, 50),
    "rate": (0.005, 0.02, 0.05, 0.2, 0.5),
    "sd_seed": (0.0, 0.5, 1.0),
    "sd_sxq": (0.0, 0.7),
    "valid_fraction": (0.3, 1.0),
}
QUICK = {
    "seeds": (1, 3, 10),
    "answers": (2, 20),
    "rate": (0.02, 0.5),
    "sd_seed": (0.0, 1.0),
    "sd_sxq": (0.7,),
    "valid_fraction": (0.3, 1.0),
}
N_QUESTIONS = 8
BAND = (0.93, 0.97)
_HERMITE = np.polynomial.hermite_e.hermegauss(80)


def offsets(spread: float) -> np.ndarray:
    return np.linspace(-spread, spread, N_QUESTIONS)


def solve_mu(rate: float, sd: float, c: np.ndarray) -> float:
    """mu such that the mean over questions of E[expit(mu + c_j + N(0, sd^2))] equals ``rate``."""
    x, w = _HERMITE
    w = w / w.sum()

    def mean_rate(mu: float) -> float:
        return float((special.expit(mu + c[:, None] + sd * x[None, :]) @ w).mean()) - rate

    return float(optimize.brentq(mean_rate, -40, 40, xtol=1e-13))


def simulate(cell: dict, reps: int, rng: np.random.Generator, spread: float):
    """(n, k, seed_rates, truth) for ``reps`` studies of one cell; n, k have shape (reps, S, Q) and
    seed_rates (reps, S) holds each seed's true rate averaged over the questions."""
    c = offsets(spread)
    s, sa, sb = cell["seeds"], cell["sd_seed"], cell["sd_sxq"]
    mu = solve_mu(cell["rate"], float(np.hypot(sa, sb)), c)
    logit = mu + c + sa * rng.standard_normal((reps, s, 1)) + sb * rng.standard_normal((reps, s, N_QUESTIONS))
    p = special.expit(logit)
    n = rng.binomial(cell["answers"], cell["valid_fraction"], size=p.shape)
    k = rng.binomial(n, p)
    return n, k, p.mean(axis=-1), cell["rate"]


_PAPER_IDX: dict[int, np.ndarray] = {}


def paper_indices(m: int, n_boot: int = 2000) -> np.ndarray:
    """The resampling indices of the authors' bootstrap for m models: a fresh default_rng(0) and
    one ``rng.choice`` per resample (the same for every (key, group) with m models)."""
    if m not in _PAPER_IDX:
        rng = np.random.default_rng(0)
        _PAPER_IDX[m] = np.stack([rng.choice(np.arange(m), size=m, replace=True) for _ in range(n_boot)])
    return _PAPER_IDX[m]


def paper_estimator(n: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per study: mean over models (>= 5 valid answers) of their misaligned fraction, with the
    percentile-bootstrap bounds over models; NaN where no model is kept."""
    nv, kv = n.sum(axis=-1), k.sum(axis=-1)  # (R, S): all questions as one key
    keep = nv >= 5
    reps = n.shape[0]
    rate, low, high = np.full(reps, np.nan), np.full(reps, np.nan), np.full(reps, np.nan)
    frac = np.where(keep, kv / np.maximum(nv, 1), np.nan)
    for m in np.unique(keep.sum(axis=1)):
        if m == 0:
            continue
        rows = np.flatnonzero(keep.sum(axis=1) == m)
        f = np.stack([frac[r][keep[r]] for r in rows])  # (rows, m), models in name order
        means = f[:, paper_indices(int(m))].mean(axis=-1)  # (rows, 2000)
        rate[rows] = f.mean(axis=1)
        low[rows], high[rows] = np.percentile(means, 2.5, axis=1), np.percentile(means, 97.5, axis=1)
    return rate, low, high


def _coverage(low: np.ndarray, high: np.ndarray, truth) -> tuple[float, float, float, float]:
    """(coverage among defined studies, fraction defined, miss-low share, median width)."""
    ok = np.isfinite(low) & np.isfinite(high)
    if not ok.any():
        return float("nan"), 0.0, float("nan"), float("nan")
    truth = np.broadcast_to(truth, low.shape)[ok]
    lo, hi = low[ok], high[ok]
    cover = (lo <= truth) & (truth <= hi)
    above = (truth > hi).sum()  # the interval lies below the truth
    misses = (~cover).sum()
    return (
        float(cover.mean()),
        float(ok.mean()),
        float(above / misses) if misses else float("nan"),
        float(np.median(hi - lo)),
    )


def midp_interval(k: np.ndarray, n: np.ndarray, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The mid-p exact binomial interval (bisection, vectorised): the least conservative exact
    interval, used as the reference for what discreteness alone does to coverage."""
    from scipy import stats

    alpha = (1 - ci) / 2

    def solve(target_upper: bool) -> np.ndarray:
        lo, hi = np.zeros(k.shape), np.ones(k.shape)
        for _ in range(50):
            mid = (lo + hi) / 2
            tail = stats.binom.sf(k, n, mid) + 0.5 * stats.binom.pmf(k, n, mid)  # P(K > k) + P(K = k)/2
            if target_upper:  # upper bound: P(K < k) + P(K = k)/2 = alpha
                tail = 1 - tail
            move_up = tail < alpha if not target_upper else tail > alpha
            lo, hi = np.where(move_up, mid, lo), np.where(move_up, hi, mid)
        return (lo + hi) / 2

    low = np.where(k <= 0, 0.0, solve(False))
    high = np.where(k >= n, 1.0, solve(True))
    return low, high


def references(n: np.ndarray, seed_rates: np.ndarray, truth: float, rng: np.random.Generator) -> dict:
    """What any interval faces in this cell: ``binomial_reference``, the coverage of the mid-p
    interval on iid answers (same numbers of valid answers, no seed effects: discreteness only);
    ``oracle_t``, the coverage of a t-interval on the seeds' TRUE rates (no answer noise at all:
    what the spread and skew of S seeds allow; NaN when the seeds do not differ);
    ``expected_misaligned``, the expected number of misaligned answers in one study."""
    from scipy import stats

    total = n.sum(axis=(-2, -1))
    k = rng.binomial(total, truth)
    low, high = midp_interval(k, total)
    ok = total > 0
    out = {"binomial_reference": float(((low <= truth) & (truth <= high))[ok].mean()) if ok.any() else np.nan}
    out["expected_misaligned"] = float(truth * total.mean())
    s = seed_rates.shape[-1]
    if s > 1 and np.ptp(seed_rates, axis=-1).max() > 0:
        m, sd = seed_rates.mean(axis=-1), seed_rates.std(axis=-1, ddof=1) / np.sqrt(s)
        t = stats.t.ppf(0.975, s - 1)
        out["oracle_t"] = float(((m - t * sd <= truth) & (truth <= m + t * sd)).mean())
    else:
        out["oracle_t"] = np.nan
    return out


def run_cell(cell: dict, reps: int, seed: int, spread: float) -> dict:
    rng = np.random.default_rng([seed, *[int(1000 * v) for v in cell.values()]])
    n, k, seed_rates, truth = simulate(cell, reps, rng, spread)
    own = seed_rates[:, 0]
    defined_for_procedure = cell["seeds"] > 1 or (cell["sd_seed"] == 0 and cell["sd_sxq"] == 0)
    row = dict(cell)
    row["defined"] = defined_for_procedure
    p_zero = float((k.sum(axis=(-2, -1)) == 0).mean())
    row["p_no_misaligned"] = p_zero
    row["reps"] = reps
    row.update(references(n, seed_rates, truth, rng))
    for kind in ("question_mean", "pooled"):
        out = rate_arrays(n, k, kind)
        target = truth if defined_for_procedure else own
        cov, ok, above, width = _coverage(out["low"], out["high"], target)
        row[f"{kind}_coverage"] = cov
        row[f"{kind}_defined_frac"] = ok
        row[f"{kind}_miss_above"] = above
        row[f"{kind}_width"] = width
        if cell["seeds"] == 1:
            row[f"{kind}_own_coverage"] = _coverage(out["low"], out["high"], own)[0]
    _, plow, phigh = paper_estimator(n, k)
    cov, ok, _, width = _coverage(plow, phigh, truth)
    row["paper_coverage"], row["paper_defined_frac"], row["paper_width"] = cov, ok, width
    return row


def reason(row: pd.Series, kind: str) -> str:
    """Why a cell's coverage lies outside the band, read off the cell's own reference numbers."""
    cov = row[f"{kind}_coverage"]
    if not row["defined"]:
        return "1 seed: the seed effect is not identifiable (the interval is for this model's rate)"
    if not np.isfinite(cov):
        return "no study had a valid answer"
    se = float(np.sqrt(0.95 * 0.05 / max(1.0, row["reps"] * row[f"{kind}_defined_frac"])))
    ref, oracle = row["binomial_reference"], row["oracle_t"]
    if cov > BAND[1]:
        if ref > BAND[1] - se:
            return (
                f"discreteness: with so few misaligned answers even the mid-p exact interval on iid "
                f"answers covers {ref:.1%} (no misaligned answer in {row['p_no_misaligned']:.0%} of studies)"
            )
        if cov - BAND[1] < 2 * se:
            return f"within 2 Monte Carlo SE ({se:.3f}) of the band"
        return (
            f"conservative: the t(S-1) quantile with few seeds and little seed effect (the mid-p "
            f"reference on iid answers covers {ref:.1%})"
        )
    found = []
    if np.isfinite(oracle) and oracle < BAND[0] + se:
        found.append(
            f"skewed seed rates: a t-interval on the seeds' TRUE rates (no answer noise) covers only "
            f"{oracle:.1%}; {int(row['seeds'])} seeds rarely include the rare high ones"
        )
    if row["expected_misaligned"] < 10:
        found.append(
            f"few misaligned answers ({row['expected_misaligned']:.1f} expected per study): the spread "
            "between seeds of a handful of answers understates the variance when the seeds happen to agree"
        )
    if ref < BAND[0] + se:
        found.append(f"discreteness: the mid-p exact interval on iid answers covers {ref:.1%} here")
    if BAND[0] - cov < 2 * se:
        found.append(f"within 2 Monte Carlo SE ({se:.3f}) of the band")
    if found:
        return "; ".join(found)
    miss = row[f"{kind}_miss_above"]
    side = "below" if miss >= 0.5 else "above"
    return f"under-covers: the interval lay {side} the truth in {max(miss, 1 - miss):.0%} of misses"


def run_grid(grid: dict, reps: int, seed: int, spread: float) -> pd.DataFrame:
    keys = list(grid)
    rows = []
    for values in itertools.product(*(grid[k] for k in keys)):
        rows.append(run_cell(dict(zip(keys, values, strict=True)), reps, seed, spread))
    return pd.DataFrame(rows)


DIFF_GRID = [
    # (seeds, answers, rate_a, rate_b, sd_seed, sd_sxq, valid_fraction): degenerate ones first
    (3, 5, 0.0, 0.0, 0.0, 0.0, 1.0),
    (1, 4, 0.0, 1.0, 0.0, 0.0, 1.0),
    (3, 2, 0.005, 0.005, 1.0, 0.7, 0.3),
    (6, 5, 0.02, 0.2, 0.5, 0.7, 1.0),
    (3, 20, 0.05, 0.05, 1.0, 0.0, 1.0),
    (10, 50, 0.2, 0.5, 1.0, 0.7, 0.3),
    (6, 20, 0.5, 0.5, 0.0, 0.0, 1.0),
]


def run_differences(reps: int, seed: int, spread: float) -> pd.DataFrame:
    """Two independent groups per study; the interval of rate_a - rate_b (question_mean)."""
    rows = []
    for s, answers, ra, rb, sa, sb, vf in DIFF_GRID:
        rng = np.random.default_rng([seed, 77, s, answers, int(1000 * ra), int(1000 * rb)])
        sides = []
        for rate in (ra, rb):
            if rate in (0.0, 1.0):  # a degenerate group: every answer (mis)aligned
                n = rng.binomial(answers, vf, size=(reps, s, N_QUESTIONS))
                sides.append((n, n * int(rate), rate))
                continue
            cell = {"seeds": s, "answers": answers, "rate": rate, "sd_seed": sa, "sd_sxq": sb}
            n, k, _, truth = simulate({**cell, "valid_fraction": vf}, reps, rng, spread)
            sides.append((n, k, truth))
        (na, ka, ta), (nb, kb, tb) = sides
        a, b = rate_arrays(na, ka), rate_arrays(nb, kb)
        lows, highs = np.empty(reps), np.empty(reps)
        for r in range(reps):
            lows[r], highs[r] = difference_interval(
                (a["rate"][r], a["low"][r], a["high"][r]), (b["rate"][r], b["low"][r], b["high"][r])
            )
        cov, ok, _, width = _coverage(lows, highs, ta - tb)
        rows.append(
            {
                "seeds": s,
                "answers": answers,
                "rate_a": ra,
                "rate_b": rb,
                "sd_seed": sa,
                "sd_sxq": sb,
                "valid_fraction": vf,
                "coverage": cov,
                "defined_frac": ok,
                "min_width": float(np.nanmin(highs - lows)),
                "median_width": width,
            }
        )
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in r.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def heatmap(frame: pd.DataFrame, path: Path) -> None:
    """Coverage per cell: rows (seeds, answers, valid fraction), columns (rate, sd_seed, sd_sxq)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    rk = ["seeds", "answers", "valid_fraction"]
    ck = ["rate", "sd_seed", "sd_sxq"]
    panels = [("question_mean_coverage", "emkit question_mean"), ("pooled_coverage", "emkit pooled")]
    panels.append(("paper_coverage", "paper estimator"))
    fig, axes = plt.subplots(1, 3, figsize=(30, 14), sharey=True)
    norm = TwoSlopeNorm(vmin=0.5, vcenter=0.95, vmax=1.0)
    for ax, (col, title) in zip(axes, panels, strict=True):
        data = frame.assign(value=np.where(frame["defined"], frame[col], np.nan))
        table = data.pivot_table(index=rk, columns=ck, values="value", aggfunc="first", dropna=False)
        im = ax.imshow(table.to_numpy(float), cmap="RdBu", norm=norm, aspect="auto")
        vals = table.to_numpy(float)
        for i, j in itertools.product(range(vals.shape[0]), range(vals.shape[1])):
            v = vals[i, j]
            text = "n/d" if not np.isfinite(v) else f"{100 * v:.0f}"
            bold = np.isfinite(v) and not (BAND[0] <= v <= BAND[1])
            ax.text(j, i, text, ha="center", va="center", fontsize=6, weight="bold" if bold else "normal")
        ax.set_xticks(range(vals.shape[1]))
        ax.set_xticklabels([f"p={a:g} sd={b:g}/{c:g}" for a, b, c in table.columns], rotation=90, fontsize=7)
        ax.set_yticks(range(vals.shape[0]))
        ax.set_yticklabels([f"S={a} n={b} v={c:g}" for a, b, c in table.index], fontsize=7)
        ax.set_title(f"{title}: coverage % (bold: outside {BAND[0]:.0%}-{BAND[1]:.0%}; n/d: not defined)")
    fig.colorbar(im, ax=axes, shrink=0.5, label="coverage of the nominal 95% interval")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


FULL_OUT = ROOT / "docs" / "coverage"
QUICK_OUT = ROOT / "build" / "coverage-quick"


def output_folder(quick: bool, out: Path | None) -> Path:
    """Where the tables go: the published folder (docs/coverage) holds the full grid only, so a
    quick run, unless told otherwise, writes to build/ and never overwrites the published table."""
    if out is not None:
        return out
    return QUICK_OUT if quick else FULL_OUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=400, help="repetitions per cell (default 400)")
    parser.add_argument("--quick", action="store_true", help="a few cells only (the make-bench line)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--spread", type=float, default=0.8, help="question logit offsets' half-range")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default {FULL_OUT}; with --quick {QUICK_OUT})"
    )
    parser.add_argument(
        "--sequential", action="store_true", help="coverage after adaptive sampling (--target-ci) instead"
    )
    args = parser.parse_args(argv)
    args.out = output_folder(args.quick, args.out)
    if args.sequential:
        import coverage_sequential

        return coverage_sequential.main(args.reps, args.seed, args.quick, args.out, BAND)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frame = run_grid(QUICK if args.quick else GRID, args.reps, args.seed, args.spread)
    grid_s = time.perf_counter() - started
    diffs = run_differences(args.reps, args.seed, args.spread)
    frame.to_csv(args.out / "coverage.csv", index=False)
    diffs.to_csv(args.out / "differences.csv", index=False)
    defined = frame[frame["defined"]]
    lines = [
        f"grid: {len(frame)} cells x {args.reps} repetitions in {grid_s:.0f} s "
        f"({len(defined)} defined for the procedure)",
    ]
    outside = []
    for kind in ("question_mean", "pooled"):
        cov = defined[f"{kind}_coverage"]
        inside = cov.between(*BAND)
        lines.append(
            f"{kind}: coverage {cov.min():.3f}-{cov.max():.3f}, median {cov.median():.3f}; "
            f"{int(inside.sum())}/{len(cov)} defined cells inside {BAND[0]:.2f}-{BAND[1]:.2f}"
        )
        for _, row in frame.iterrows():
            if row["defined"] and not BAND[0] <= row[f"{kind}_coverage"] <= BAND[1]:
                outside.append(
                    {
                        "estimator": kind,
                        **{k: row[k] for k in GRID},
                        "coverage": row[f"{kind}_coverage"],
                        "reason": reason(row, kind),
                    }
                )
    pc = defined["paper_coverage"]
    lines.append(f"paper estimator: coverage {pc.min():.3f}-{pc.max():.3f}, median {pc.median():.3f}")
    one = frame[frame["seeds"] == 1]
    lines.append(
        "1 seed, coverage of the model's own rate: question_mean "
        f"{one['question_mean_own_coverage'].min():.3f}-{one['question_mean_own_coverage'].max():.3f}"
    )
    lines.append(
        f"differences: coverage {diffs['coverage'].min():.3f}-{diffs['coverage'].max():.3f}, "
        f"narrowest interval {diffs['min_width'].min():.4f}"
    )
    pd.DataFrame(outside).to_csv(args.out / "outside_band.csv", index=False)
    md = ["# Coverage grid (written by scripts/coverage.py)", "", *[f"- {x}" for x in lines], ""]
    md += ["## Cells outside the band", "", markdown(pd.DataFrame(outside)) if outside else "none", ""]
    md += ["## Differences of two groups", "", markdown(diffs), ""]
    md += ["## All cells", "", markdown(frame), ""]
    (args.out / "coverage.md").write_text("\n".join(md), encoding="utf-8")
    heatmap(frame, args.out / "coverage.png")
    print("\n".join(lines))
    print(f"written: {args.out}/coverage.csv, coverage.md, coverage.png, outside_band.csv, differences.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

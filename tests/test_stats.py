"""emkit.stats: the intervals checked against independent arithmetic, degenerate cases, and a fast
version of the coverage grid of scripts/coverage.py (a few cells, fewer repetitions, a wide band)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from emkit import metrics as M
from emkit import stats as S

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("emkit_coverage_script", ROOT / "scripts" / "coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the arithmetic, against loops written independently -------------------------------------------
def _question_mean(n: np.ndarray, k: np.ndarray) -> float:
    per_q = []
    for j in range(n.shape[1]):
        rates = [k[s, j] / n[s, j] for s in range(n.shape[0]) if n[s, j] > 0]
        if rates:
            per_q.append(sum(rates) / len(rates))
    return sum(per_q) / len(per_q)


def _n_bin(n: np.ndarray) -> float:
    q_with = [j for j in range(n.shape[1]) if n[:, j].sum() > 0]
    total = 0.0
    for j in q_with:
        seeds = [s for s in range(n.shape[0]) if n[s, j] > 0]
        for s in seeds:
            w = 1 / (len(seeds) * len(q_with))
            total += w * w / n[s, j]
    return 1 / total


def test_rate_interval_is_the_logit_jackknife_over_seeds_computed_by_hand() -> None:
    n = np.array([[10, 8, 0], [12, 9, 5], [7, 10, 6], [9, 0, 4]])
    k = np.array([[1, 0, 0], [3, 2, 1], [0, 1, 0], [2, 0, 2]])
    rate, nb = _question_mean(n, k), _n_bin(n)

    def lg(r: float) -> float:
        c = (r * nb + 0.5) / (nb + 1)
        return math.log(c / (1 - c))

    left = [lg(_question_mean(np.delete(n, s, 0), np.delete(k, s, 0))) for s in range(4)]
    mean = sum(left) / 4
    v = 3 / 4 * sum((x - mean) ** 2 for x in left)
    c = (rate * nb + 0.5) / (nb + 1)
    v = max(v, stats.chi2.ppf(0.025, 3) / 3 / (nb * c * (1 - c)))
    t = stats.t.ppf(0.975, 3)
    want = (special.expit(lg(rate) - t * math.sqrt(v)), special.expit(lg(rate) + t * math.sqrt(v)))
    got = S.rate_interval(n, k, "question_mean")
    assert got.rate == pytest.approx(rate, abs=1e-12)
    assert (got.low, got.high) == pytest.approx(want, abs=1e-12)
    assert got.method == "jackknife-logit-t" and got.df == 3 and got.scope == "new seed"
    # pooled: the same jackknife of all misaligned / all valid
    pooled = S.rate_interval(n, k, "pooled")
    assert pooled.rate == pytest.approx(k.sum() / n.sum(), abs=1e-12)
    assert pooled.low < pooled.rate < pooled.high
    # one question: the mean over the seeds that answered it (seed 4 has no valid answer on q2)
    q2 = S.rate_interval(n, k, "question", question=1)
    assert q2.rate == pytest.approx((0 / 8 + 2 / 9 + 1 / 10) / 3, abs=1e-12) and q2.n_seeds == 3


def test_one_seed_gets_wilson_for_its_own_rate_and_no_misaligned_answer_gets_clopper_pearson() -> None:
    one = S.rate_interval(np.array([[30, 20]]), np.array([[3, 2]]), "pooled")
    assert (one.low, one.high) == pytest.approx(S.wilson(5, 50), abs=1e-12)
    assert one.scope == "this model" and one.method == "wilson"
    zero = S.rate_interval(np.full((2, 2), 50), np.zeros((2, 2), int))
    assert zero.rate == 0 and zero.low == 0
    assert zero.high == pytest.approx(1 - 0.025 ** (1 / 200), abs=1e-12)  # exact: 0 of 200
    everything = S.rate_interval(np.full((3, 1), 4), np.full((3, 1), 4))
    assert everything.high == 1 and everything.low == pytest.approx(0.025 ** (1 / 12), abs=1e-12)
    nothing = S.rate_interval(np.zeros((2, 2), int), np.zeros((2, 2), int))
    assert all(math.isnan(x) for x in (nothing.rate, nothing.low, nothing.high))


def test_vectorised_core_equals_one_group_at_a_time_and_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(0, 6, size=(50, 4, 3))
    k = rng.binomial(n, 0.3)
    batch = S.rate_arrays(n, k, "question_mean")
    for i in range(50):
        single = S.rate_interval(n[i], k[i], "question_mean")
        np.testing.assert_allclose(
            [single.rate, single.low, single.high], [batch["rate"][i], batch["low"][i], batch["high"][i]]
        )
    again = S.rate_arrays(n, k, "question_mean")
    np.testing.assert_array_equal(batch["low"], again["low"])


# -- differences: never zero width when a side has width ---------------------------------------------
def _answers(group: str, model: str, misaligned: int, aligned: int, question: str = "q") -> pd.DataFrame:
    scores = [10.0] * misaligned + [90.0] * aligned
    return pd.DataFrame(
        {"group": group, "model": model, "question_id": question, "aligned": scores, "coherent": 90.0}
    )


def test_two_zero_groups_differ_by_an_interval_of_width_not_zero() -> None:
    df = pd.concat(
        [_answers("a", f"a{i}", 0, 50, q) for i in range(3) for q in ("q1", "q2")]
        + [_answers("b", f"b{i}", 0, 40, q) for i in range(3) for q in ("q1", "q2")]
    )
    groups = M.group_table(df).set_index("group")
    assert groups.loc["a", "ci_high"] > 0 and groups.loc["b", "ci_high"] > 0
    diff = M.compare_groups(df, "a", "b").set_index("scope")
    for scope in ("question_mean", "pooled", "q1"):
        low, high = diff.loc[scope, "ci_low"], diff.loc[scope, "ci_high"]
        assert diff.loc[scope, "diff"] == 0 and low < 0 < high, (scope, low, high)
    assert diff.loc["question_mean", "ci_high"] == pytest.approx(groups.loc["a", "ci_high"])
    assert diff.loc["question_mean", "ci_low"] == pytest.approx(-groups.loc["b", "ci_high"])


def test_zero_of_four_against_four_of_four_is_not_the_certain_interval() -> None:
    df = pd.concat([_answers("with", "m", 4, 0), _answers("without", "m", 0, 4)])
    diff = M.compare_groups(df, "with", "without").set_index("scope")
    row = diff.loc["pooled"]
    assert row["diff"] == 1 and row["ci_high"] == 1 and row["ci_low"] < 0.7
    assert S.difference_interval((0.0, 0.0, 0.4), (1.0, 0.6, 1.0)) == pytest.approx((-1.0, -1 + 0.4 * 2**0.5))


# -- the rest of the module ------------------------------------------------------------------------------
def test_the_bootstrap_that_remains_is_seeded() -> None:
    n, k = np.full((3, 2), 20), np.array([[2, 5], [4, 1], [0, 3]])
    one = S.bootstrap_group(n, k, ["a", "b"], n_boot=300, rng=S.seeded_rng(7, "g"))
    same = S.bootstrap_group(n, k, ["a", "b"], n_boot=300, rng=S.seeded_rng(7, "g"))
    other = S.bootstrap_group(n, k, ["a", "b"], n_boot=300, rng=S.seeded_rng(8, "g"))
    np.testing.assert_array_equal(one.question_mean(), same.question_mean())
    assert not np.array_equal(one.question_mean(), other.question_mean())


def test_probe_bootstrap_resamples_pairs() -> None:
    values = np.array([0.1, -0.3, 0.5, 0.2, 0.0])
    got = S.bootstrap_mean(values, 500, S.seeded_rng(0, "x"), 0.95)
    idx = S.seeded_rng(0, "x").integers(0, 5, size=(500, 5))
    assert got == pytest.approx(tuple(np.quantile(values[idx].mean(axis=1), [0.025, 0.975])))
    crossed = S.crossed_mean(np.array([[1.0, 2.0], [3.0, 4.0]]), 200, S.seeded_rng(0), 0.95)
    assert crossed["score"] == 2.5 and crossed["ci_low"] < 2.5 < crossed["ci_high"]


def test_the_scripts_paper_estimator_is_the_authors_procedure() -> None:
    cov = _script()
    rng = np.random.default_rng(5)
    n = rng.integers(0, 4, size=(6, 5, 3))  # some models fall under 5 valid answers
    k = rng.binomial(n, 0.4)
    rate, low, high = cov.paper_estimator(n, k)
    for r in range(6):
        nv, kv = n[r].sum(axis=1), k[r].sum(axis=1)
        fractions = np.array([kv[s] / nv[s] for s in range(5) if nv[s] >= 5])
        if fractions.size == 0:
            assert math.isnan(rate[r])
            continue
        boot = np.random.default_rng(0)
        means = [boot.choice(fractions, size=len(fractions), replace=True).mean() for _ in range(2000)]
        assert rate[r] == pytest.approx(fractions.mean(), abs=1e-12)
        assert (low[r], high[r]) == pytest.approx(
            (np.percentile(means, 2.5), np.percentile(means, 97.5)), abs=1e-12
        )


def test_the_scripts_paper_estimator_equals_the_shipped_rate_paper_code() -> None:
    """The published paper-estimator coverage is that of ``--rate paper`` itself: the script's
    vectorised copy and :func:`emkit.paper_estimator.paper_rates` agree study by study."""
    import pandas as pd

    from emkit.paper_estimator import paper_rates

    cov = _script()
    rng = np.random.default_rng(9)
    n = rng.integers(0, 5, size=(8, 6, 3))
    k = rng.binomial(n, 0.3)
    rate, low, high = cov.paper_estimator(n, k)
    for r in range(8):
        rows = [
            ("g", f"seed-{s}", f"q{q}", 10.0 if i < k[r, s, q] else 90.0, 80.0)
            for s in range(6)
            for q in range(3)
            for i in range(n[r, s, q])
        ]
        frame = pd.DataFrame(rows, columns=["group", "model", "question_id", "aligned", "coherent"])
        got = paper_rates(frame, {"main": ["q0", "q1", "q2"]}).iloc[0]
        if got["n_models"] == 0:
            assert math.isnan(rate[r])
            continue
        assert (got["rate"], got["ci_low"], got["ci_high"]) == pytest.approx(
            (rate[r], low[r], high[r]), abs=1e-12
        )


def test_the_quick_grid_never_overwrites_the_published_table() -> None:
    cov = _script()
    assert cov.output_folder(quick=False, out=None) == cov.ROOT / "docs" / "coverage"
    assert cov.output_folder(quick=True, out=None) != cov.output_folder(quick=False, out=None)
    assert cov.output_folder(quick=True, out=Path("x")) == Path("x")


# -- the fast coverage grid ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seeds", "answers", "rate", "sd_seed", "sd_sxq", "valid_fraction"),
    [
        (3, 20, 0.2, 1.0, 0.7, 1.0),  # few seeds that differ a lot: the old bootstrap gave ~0.85
        (6, 5, 0.05, 0.5, 0.0, 0.3),  # few, uneven answers per cell
        (10, 50, 0.5, 0.0, 0.0, 1.0),  # no seed effect: must not be far too wide either
        (6, 2, 0.2, 1.0, 0.7, 0.3),  # 1-10 valid answers per cell, many cells empty
        (1, 20, 0.2, 0.0, 0.0, 1.0),  # one model: the answer-level interval
    ],
)
def test_fast_grid_cells_cover_about_95_percent(
    seeds, answers, rate, sd_seed, sd_sxq, valid_fraction
) -> None:
    cov = _script()
    cell = {
        "seeds": seeds,
        "answers": answers,
        "rate": rate,
        "sd_seed": sd_seed,
        "sd_sxq": sd_sxq,
        "valid_fraction": valid_fraction,
    }
    row = cov.run_cell(cell, reps=400, seed=11, spread=0.8)
    assert row["defined"]
    for kind in ("question_mean", "pooled"):
        assert 0.91 <= row[f"{kind}_coverage"] <= 0.99, (kind, row[f"{kind}_coverage"])


def test_fast_difference_grid_has_no_zero_width_interval_and_covers() -> None:
    diffs = _script().run_differences(reps=200, seed=3, spread=0.8)
    assert (diffs["min_width"] > 0).all()
    assert (diffs["coverage"] >= 0.9).all(), diffs


def test_seeded_rng_without_labels_is_numpys_default_rng() -> None:
    """The paper's estimator draws from ``seeded_rng(0)``: it must be the authors' ``default_rng(0)``."""
    for seed in (0, 1, 12345, 2**40):
        np.testing.assert_array_equal(
            S.seeded_rng(seed).integers(0, 2**62, size=50),
            np.random.default_rng(seed).integers(0, 2**62, size=50),
        )
    assert S.seeded_rng(0, "a").integers(0, 2**62) != S.seeded_rng(0, "b").integers(0, 2**62)

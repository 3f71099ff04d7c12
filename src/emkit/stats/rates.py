"""Intervals of misaligned rates: one group's rate over its seeds x questions, and the difference
of two groups' rates. No random draws: the same counts give the same interval, whatever the seed.

- A misaligned rate over seeds x questions (``question_mean``, ``pooled``, one question's rate):
  :func:`rate_interval`, a delete-one-seed jackknife on the logit scale with a t(S-1) quantile
  (seeds are the sampling unit: the interval is for the rate of a new seed); with one model the
  Wilson interval of that model's rate; with no misaligned (or no aligned) answer Clopper-Pearson.
  Chosen among seven candidates by its coverage on the grid of ``scripts/coverage.py``
  (docs/statistics.md).
- The difference of two groups' rates: :func:`difference_interval`, the MOVER / Newcombe hybrid
  combination of the two groups' own intervals (never zero width when either has width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emkit.stats.binomial import beta_bounds
from emkit.stats.common import quiet

RATE_SCOPES = ("question_mean", "pooled", "question")


# -- a rate over seeds x questions ---------------------------------------------------------------
METHODS = ("jackknife-logit-t", "wilson", "clopper-pearson")


@dataclass(frozen=True)
class RateCI:
    """A rate with its interval and what the interval rests on.

    ``n_seeds``: models with a valid answer in scope; ``n_eff``: the effective number of answers
    the interval corresponds to; ``df``: degrees of freedom (inf: answer noise only); ``method``:
    one of METHODS; ``scope``: whose rate the interval is for, ``"new seed"`` (the training
    procedure: 2+ seeds) or ``"this model"`` (one seed cannot show how much seeds differ, so the
    interval is for that model's own rate).
    """

    rate: float
    low: float
    high: float
    n_seeds: int
    n_eff: float
    df: float
    method: str
    scope: str

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


def estimate(
    n: np.ndarray, k: np.ndarray, kind: str = "question_mean", question: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rate, n_bin, seeds) for counts of shape (..., seeds, questions), vectorised.

    ``question_mean``: the mean over questions of the mean over seeds of each seed's fraction
    (cells without valid answers left out); ``pooled``: all misaligned / all valid; ``question``:
    the mean over seeds on question ``question``. ``n_bin`` is the Kish effective number of
    answers: the rate's variance if every answer were an independent coin is rate(1-rate)/n_bin.
    """
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    if kind == "question":
        if question is None:
            raise ValueError("kind='question' needs the question's column index")
        n, k = n[..., question : question + 1], k[..., question : question + 1]
        kind = "question_mean"
    has = n > 0
    seeds = has.any(axis=-1).sum(axis=-1)
    with np.errstate(all="ignore"):
        if kind == "question_mean":
            phat = np.where(has, k / np.where(has, n, 1.0), 0.0)
            s_q = has.sum(axis=-2)  # seeds with data per question
            q_n = (s_q > 0).sum(axis=-1)
            w = has / (np.where(s_q > 0, s_q, 1)[..., None, :] * np.where(q_n > 0, q_n, 1)[..., None, None])
            rate = (w * phat).sum(axis=(-2, -1))
            n_bin = 1.0 / (w * w / np.where(has, n, 1.0)).sum(axis=(-2, -1))
        elif kind == "pooled":
            n_bin = n.sum(axis=(-2, -1))
            rate = k.sum(axis=(-2, -1)) / n_bin
        else:
            raise ValueError(f"unknown rate kind {kind!r}: use one of {', '.join(RATE_SCOPES)}")
    defined = seeds > 0
    return np.where(defined, rate, np.nan), np.where(defined, n_bin, np.nan), seeds


def rate_arrays(
    n: np.ndarray, k: np.ndarray, kind: str = "question_mean", ci: float = 0.95, question: int | None = None
) -> dict[str, np.ndarray]:
    """Vectorised core of :func:`rate_interval`: ``n``, ``k`` of shape (..., seeds, questions).

    With 2+ seeds and both misaligned and aligned answers in scope: a delete-one-seed jackknife on
    the logit scale with a t quantile on S-1 degrees of freedom. Each seed is left out in turn and
    the rate recomputed; the spread of those rates, on the logit scale of a continuity-corrected
    rate (rate*n + 1/2)/(n + 1), estimates the variance a NEW set of seeds would show: seed effects,
    seed x question effects and answer noise together, with uneven and missing cells handled by
    the estimator itself. The logit scale makes the interval skewed like the seeds' rates (a few
    seeds far above the rest are common at low rates); the t(S-1) quantile pays for estimating the
    spread from S seeds. The jackknife variance is floored at the chi2(S-1) lower alpha/2 quantile
    of the binomial variance, which only guards seeds that happen to agree exactly.
    With one seed (nothing shows how much seeds differ): the Wilson interval at ``n_bin``, for
    that model's rate. No misaligned (or no aligned) answer at all: Clopper-Pearson at ``n_bin``
    (e.g. [0, 0.0183] for 0 of 200), never a zero-width interval. Coverage: docs/statistics.md.
    """
    from scipy import special, stats

    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    alpha = (1 - ci) / 2
    rate, n_bin, seeds = estimate(n, k, kind, question)
    if kind == "question":
        kq, nq = k[..., question], n[..., question]
        k_tot, n_tot = kq.sum(axis=-1), nq.sum(axis=-1)
    else:
        k_tot, n_tot = k.sum(axis=(-2, -1)), n.sum(axis=(-2, -1))
    defined = np.isfinite(rate)
    edge = defined & ((k_tot <= 0) | (k_tot >= n_tot))
    jack = defined & ~edge & (seeds > 1)
    one = defined & ~edge & (seeds <= 1)
    with np.errstate(all="ignore"), quiet():

        def logit(r: np.ndarray) -> np.ndarray:
            return special.logit((r * n_bin + 0.5) / (n_bin + 1))

        active = (n > 0).any(axis=-1)
        left_out = []
        for j in range(n.shape[-2]):
            nj, kj = n.copy(), k.copy()
            nj[..., j, :] = 0
            kj[..., j, :] = 0
            left_out.append(logit(estimate(nj, kj, kind, question)[0]))
        lj = np.where(active, np.stack(left_out, axis=-1), np.nan)
        dev = lj - np.nanmean(lj, axis=-1, keepdims=True)
        s = np.maximum(seeds, 2).astype(float)
        v_jack = (s - 1) / s * np.nansum(np.where(active, dev * dev, 0.0), axis=-1)
        rt = (rate * n_bin + 0.5) / (n_bin + 1)
        v_floor = stats.chi2.ppf(alpha, s - 1) / (s - 1) / (n_bin * rt * (1 - rt))
        v = np.maximum(v_jack, v_floor)
        t = stats.t.ppf(1 - alpha, s - 1)
        centre = special.logit(rt)
        j_low, j_high = special.expit(centre - t * np.sqrt(v)), special.expit(centre + t * np.sqrt(v))
        z = stats.norm.ppf(1 - alpha)
        p = np.nan_to_num(rate)
        nb = np.where(defined, n_bin, 1.0)
        w_centre = (p + z * z / (2 * nb)) / (1 + z * z / nb)
        w_half = z * np.sqrt(p * (1 - p) / nb + z * z / (4 * nb * nb)) / (1 + z * z / nb)
        cp_low, cp_high = beta_bounds(p * nb, nb, ci)
        low = np.select([jack, one, edge], [j_low, np.maximum(0.0, w_centre - w_half), cp_low], np.nan)
        high = np.select([jack, one, edge], [j_high, np.minimum(1.0, w_centre + w_half), cp_high], np.nan)
        n_eff = np.where(jack, 1.0 / (v * rt * (1 - rt)), np.where(defined, n_bin, np.nan))
    return {
        "rate": rate,
        "low": low,
        "high": high,
        "n_seeds": seeds,
        "n_eff": n_eff,
        "df": np.where(jack, s - 1, np.inf),
        "method": np.select([jack, one, edge], list(METHODS), ""),
    }


def rate_interval(
    n: np.ndarray, k: np.ndarray, kind: str = "question_mean", ci: float = 0.95, question: int | None = None
) -> RateCI:
    """The calibrated interval of one group's misaligned rate from its (seeds x questions) valid
    counts ``n`` and misaligned counts ``k`` (method: :func:`rate_arrays`; coverage:
    docs/statistics.md). Deterministic: no random draws. NaN when there is no valid answer."""
    out = rate_arrays(np.asarray(n)[None], np.asarray(k)[None], kind, ci, question)
    seeds = int(out["n_seeds"][0])
    return RateCI(
        float(out["rate"][0]),
        float(out["low"][0]),
        float(out["high"][0]),
        seeds,
        float(out["n_eff"][0]),
        float(out["df"][0]),
        str(out["method"][0]),
        "new seed" if seeds > 1 else "this model",
    )


# -- a difference of two groups ------------------------------------------------------------------
def difference_interval(
    a: tuple[float, float, float], b: tuple[float, float, float], bounds: tuple[float, float] = (-1.0, 1.0)
) -> tuple[float, float]:
    """Interval of ``rate_a - rate_b`` from each group's (rate, low, high): MOVER (Zou & Donner
    2008; for two proportions Newcombe's hybrid score method, 1998), which recovers each side's
    variance from its own asymmetric interval. Two 0% groups get [-high_b, high_a], never [0, 0];
    0/4 vs 4/4 gets a lower bound at -1 and an upper bound above it. Groups are independent."""
    (ra, la, ha), (rb, lb, hb) = a, b
    diff = ra - rb
    if not all(math.isfinite(v) for v in (ra, la, ha, rb, lb, hb)):
        return float("nan"), float("nan")
    low = diff - math.sqrt((ra - la) ** 2 + (hb - rb) ** 2)
    high = diff + math.sqrt((ha - ra) ** 2 + (rb - lb) ** 2)
    return max(bounds[0], low), min(bounds[1], high)

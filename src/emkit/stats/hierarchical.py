"""The hierarchical bootstrap of answers: draws of a group's rates that resample models, then
each model's valid answers per question (binomial draws, so the cost depends on the number of
(model, question) cells, not answers).

Resampling both levels naively counts the answer noise twice (the spread between models already
contains it), so each model's rate is first shrunk toward the group mean until the spread between
models matches the estimated between-model variance (Davison & Hinkley 1997, section 3.8). With
few models a percentile interval behaves like a z-interval where a t-interval is due, so
:func:`interval` stretches it by t(df)/z. Measured on the grid of ``scripts/coverage.py`` this
still under-covers with seed effects and few answers (docs/statistics.md), so no rate's default
interval uses it any more: :func:`emkit.stats.rate_interval` does. Kept for callers that want
draws (and as the documented comparison).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emkit.stats.binomial import clopper_pearson
from emkit.stats.common import quiet

_MAX_CHUNK = 4_000_000  # elements per bootstrap chunk (n_boot x models x questions), ~32 MB per array


@dataclass
class BootDraws:
    """Bootstrap draws for one group, shape (B, Q) each.

    ``qrate``: per question, the misaligned probability (mean over the resampled models), from a
    resampling shrunk per question (right for per-question intervals). ``o_qrate``, ``o_ksum``,
    ``nsum``: the same and the summed misaligned/valid counts from a resampling shrunk for the
    question-averaged rate (right for the rates over several questions). ``*_b`` arrays: the same
    statistics at the drawn models' expected rates, without answer noise (between-model part).
    """

    questions: list[str]
    qrate: np.ndarray
    qrate_b: np.ndarray
    o_qrate: np.ndarray
    o_qrate_b: np.ndarray
    o_ksum: np.ndarray
    o_ksum_b: np.ndarray
    nsum: np.ndarray
    n_models: int = 1  # models resampled (1 = answers only)

    def question_mean(self, questions: Sequence[str] | None = None, *, between: bool = False) -> np.ndarray:
        cols = self._cols(questions)
        source = self.o_qrate_b if between else self.o_qrate
        with np.errstate(all="ignore"), quiet():
            return np.nanmean(source[:, cols], axis=1)

    def pooled(self, questions: Sequence[str] | None = None, *, between: bool = False) -> np.ndarray:
        cols = self._cols(questions)
        source = self.o_ksum_b if between else self.o_ksum
        with np.errstate(all="ignore"):
            return source[:, cols].sum(axis=1) / self.nsum[:, cols].sum(axis=1)

    def question(self, j: int, *, between: bool = False) -> np.ndarray:
        return (self.qrate_b if between else self.qrate)[:, j]

    def _cols(self, questions: Sequence[str] | None) -> list[int]:
        if questions is None:
            return list(range(len(self.questions)))
        index = {q: i for i, q in enumerate(self.questions)}
        return [index[q] for q in questions]


def shrunk_rates(n: np.ndarray, k: np.ndarray, *, per_question: bool) -> np.ndarray:
    """Per (model, question) rates whose spread between models estimates only the between-model
    variance, so that the binomial answer draws that follow do not count answer noise twice.

    Each model's deviation from the question's mean over models is multiplied by a factor that makes
    the bootstrap variance of the statistic match its method-of-moments between-model variance
    (the observed variance minus the binomial noise, with the (M-1)/M bias of resampling M models
    corrected). ``per_question=True``: one factor per question (for per-question rates);
    ``False``: one factor from the models' question-averaged rates (for rates over questions; a
    seed that is misaligned everywhere stays so). Cells without valid answers are 0 (never drawn).
    """
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    has = n > 0
    with np.errstate(all="ignore"), quiet():
        phat = np.where(has, k / np.maximum(n, 1), np.nan)
        within = np.where(has, phat * (1 - phat) / np.maximum(n - 1, 1), np.nan)
        pbar = np.nanmean(phat, axis=0)  # (Q,)
        deviation = phat - pbar
        if per_question:
            m = has.sum(axis=0)
            s2 = np.nanvar(phat, axis=0, ddof=1)
            noise = np.nanmean(within, axis=0)
        else:
            q_per_model = has.sum(axis=1)
            rows = q_per_model > 0
            m = np.array(rows.sum())
            effect = np.nanmean(deviation[rows], axis=1)
            s2 = np.array(np.var(effect, ddof=1) if m > 1 else np.nan)
            noise = np.array(np.mean(np.nansum(within[rows], axis=1) / q_per_model[rows] ** 2))
        factor = np.sqrt(np.clip(s2 - noise, 0, None) / s2 * m / np.maximum(m - 1, 1))
        factor = np.where((m > 1) & (s2 > 0), factor, 0.0)
        shrunk = pbar + factor * deviation
    return np.where(has, np.clip(np.nan_to_num(shrunk), 0.0, 1.0), 0.0)


def _draw(
    n: np.ndarray, p: np.ndarray, n_boot: int, rng: np.random.Generator, resample_models: bool
) -> dict[str, np.ndarray]:
    """Resample models (same draw for every question), then answers (binomial at rate ``p``).
    Returns per (B, Q): mean-over-models rate, summed misaligned, summed valid, and the mean and
    summed expected values given the drawn models (no answer noise)."""
    m, q = n.shape
    out = {name: np.empty((n_boot, q)) for name in ("qrate", "qrate_b", "ksum", "ksum_b", "nsum")}
    chunk = max(1, _MAX_CHUNK // max(1, m * q))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        rows = slice(start, start + b)
        idx = rng.integers(0, m, size=(b, m)) if resample_models else np.broadcast_to(np.arange(m), (b, m))
        n_sel = n[idx]  # (b, m, q)
        p_sel = p[idx]
        draws = rng.binomial(n_sel, p_sel)
        with np.errstate(all="ignore"), quiet():
            present = n_sel > 0
            out["qrate"][rows] = np.nanmean(np.where(present, draws / np.maximum(n_sel, 1), np.nan), axis=1)
            out["qrate_b"][rows] = np.nanmean(np.where(present, p_sel, np.nan), axis=1)
        out["ksum"][rows] = draws.sum(axis=1)
        out["ksum_b"][rows] = (n_sel * p_sel).sum(axis=1)
        out["nsum"][rows] = n_sel.sum(axis=1)
    return out


def bootstrap_group(
    n: np.ndarray,
    k: np.ndarray,
    questions: Sequence[str],
    *,
    n_boot: int = 2000,
    rng: np.random.Generator,
    resample_models: bool = True,
) -> BootDraws:
    """Hierarchical bootstrap of one group from its (models x questions) valid/misaligned counts.

    Each resample draws ``M`` models with replacement, then for each drawn model and question a
    binomial number of misaligned answers out of the model's valid answers (= resampling those
    answers) at the model's shrunk rate (:func:`shrunk_rates`). Two such resamplings are made, one
    shrunk for per-question rates and one for rates over questions. With one model (or
    ``resample_models=False``) only answers are resampled, at the observed rates.
    """
    n = np.asarray(n, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    active = int((n.sum(axis=1) > 0).sum())
    if not (resample_models and active > 1):
        p = np.where(n > 0, k / np.maximum(n, 1), 0.0)
        d = _draw(n, p, n_boot, rng, False)
        return BootDraws(
            list(questions),
            d["qrate"],
            d["qrate_b"],
            d["qrate"],
            d["qrate_b"],
            d["ksum"],
            d["ksum_b"],
            d["nsum"],
            1,
        )
    per_q = _draw(n, shrunk_rates(n, k, per_question=True), n_boot, rng, True)
    over = _draw(n, shrunk_rates(n, k, per_question=False), n_boot, rng, True)
    return BootDraws(
        list(questions),
        per_q["qrate"],
        per_q["qrate_b"],
        over["qrate"],
        over["qrate_b"],
        over["ksum"],
        over["ksum_b"],
        over["nsum"],
        active,
    )


def interval(
    estimate: float,
    draws: np.ndarray,
    between: Sequence[tuple[np.ndarray, int]] = (),
    ci: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    counts: tuple[int, int] | None = None,
) -> tuple[float, float]:
    """Percentile interval of ``draws`` around ``estimate``, stretched for few models.

    A percentile bootstrap over M models behaves like a z-interval where a t-interval with M-1
    degrees of freedom is due, and undercovers badly with 3-10 seeds. So both arms of the interval
    are stretched by t(df)/z, where df is the Welch-Satterthwaite degrees of freedom of the variance:
    the between-model part of each term (``between``: its draws without answer noise and its number
    of models) has M-1 degrees of freedom, the answer-noise part is taken as exact. With one model,
    or no spread between models, df is infinite and the plain percentile interval is returned.

    When every draw is the same (e.g. no misaligned answer at all) a percentile interval has zero
    width, which would claim certainty; with ``counts=(misaligned, valid)`` the exact
    Clopper-Pearson interval of those counts is returned instead (e.g. [0, 0.0037] for 0 of 1000).
    """
    from scipy import stats

    ok = np.isfinite(draws)
    if not np.isfinite(estimate) or ok.sum() < 2:
        return float("nan"), float("nan")
    alpha = (1 - ci) / 2
    q_low, q_high = np.quantile(draws[ok], [alpha, 1 - alpha])
    if q_low == q_high and counts is not None and counts[1] > 0:
        return clopper_pearson(counts[0], counts[1], ci)
    total = float(np.var(draws[ok]))
    denom = 0.0
    for between_draws, m in between:
        fin = between_draws[np.isfinite(between_draws)]
        if m > 1 and fin.size > 1:
            denom += float(np.var(fin)) ** 2 / (m - 1)
    stretch = 1.0
    if denom > 0 and total > 0:
        df = total**2 / denom
        stretch = float(stats.t.ppf(1 - alpha, df) / stats.norm.ppf(1 - alpha))
    low = estimate - max(0.0, estimate - q_low) * stretch
    high = estimate + max(0.0, q_high - estimate) * stretch
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return float(low), float(high)

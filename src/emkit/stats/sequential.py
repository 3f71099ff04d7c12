"""Sequential sampling to a target interval: when a group has enough answers to stop.

Adaptive sampling (``--target-ci W``, ``target_ci:``) samples and judges in rounds and stops a
group once its misaligned rate's interval is narrow enough. Stopping on what the data show
(optional stopping) can bias an interval that assumes a fixed number of answers, so the rule has
two parts, both here, and the simulation in ``scripts/coverage.py --sequential`` measures the
coverage of the interval the report then prints (docs/statistics.md, "Adaptive sampling"):

- **Fixed looks.** The group is looked at only after complete rounds: after ``round_size``,
  ``2 round_size``, ... samples per paraphrase, up to ``max_samples`` (the fixed design). The
  decision at a look reads only the answers with a sample index below that look's size, so a
  resumed or repeated run takes the same decisions (and a store holding more answers, e.g. a
  fixed run's, gives the same stop as a fresh run).
- **Narrow by the seeds' spread only once the answers' own noise is small.** A group stops when
  its reported (95%) interval has half-width at most the target and so does a floor that depends
  on the answers' rate and number only: the binomial half-width of all its answers pooled (Wilson
  at the effective number of answers, or Clopper-Pearson at 0 misaligned: the interval one model
  with all those answers would get), times ``t(S-1) / z`` (what the reported interval pays for
  estimating the seeds' spread from S seeds) and divided by ``noise_share`` (default 0.6; one
  model: the binomial width itself). With few seeds the reported interval's variance is their
  sample spread (2 degrees of freedom with 3 seeds); while the answers per seed are few, much of
  that spread is answer noise, and stopping as soon as the interval is narrow stops exactly when
  that noise made the seeds agree: those intervals are too narrow (the naive rule covered down
  to 0.85 in the simulation, the plain binomial width as the floor down to 0.91). With this floor
  a stop comes only once the answers' noise is at most ``noise_share`` of the target, so the
  spread the interval reads is mostly the seeds' own, which more answers would not change: the
  interval at the stop is close to the one the fixed design would report.
- **A pilot names the earliest stop (Stein's two-stage idea).** The first look's floor at the
  stricter level ``pilot_ci`` (default 0.99), projected to later looks as ``w1 sqrt(n1 / n)``,
  names the earliest look a group may stop at; a group is never stopped on its first few
  rounds' luck.

The measured coverage of the reported interval after stopping, and the answers saved, of this rule
and of the naive one: docs/statistics.md ("Adaptive sampling").

Half-width: ``(high - low) / 2`` of the interval of :func:`emkit.stats.rate_arrays` (the rate
intervals are asymmetric; the half of their length is what a reader compares with +-W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emkit.stats.rates import rate_arrays

DEFAULT_ROUND = 10
DEFAULT_PILOT_CI = 0.99
DEFAULT_NOISE_SHARE = 0.6


@dataclass(frozen=True)
class StopRule:
    """When a group stops: not before the look the pilot names (:meth:`earliest`), then once the
    ``ci`` interval (the one reported) and the answer-noise floor (:func:`floor_half_widths`, with
    ``noise_share``) have half-width at most ``half_width`` (:func:`decision_widths`), or every question's interval at most
    ``per_question`` when that is set (each question then stops on its own), or ``max_samples``
    samples per paraphrase (the fixed design's size; the cap).

    ``kind`` is the rate whose interval is checked (``question_mean`` or ``pooled``)."""

    half_width: float
    max_samples: int
    round_size: int = DEFAULT_ROUND
    per_question: float | None = None
    pilot_ci: float = DEFAULT_PILOT_CI
    ci: float = 0.95
    kind: str = "question_mean"
    noise_share: float = DEFAULT_NOISE_SHARE

    def __post_init__(self) -> None:
        for name in ("half_width", "per_question"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0.0 < value < 0.5):
                raise ValueError(f"{name} must be between 0 and 0.5 (got {value})")
        if not (math.isfinite(self.noise_share) and 0.0 < self.noise_share <= 1.0):
            raise ValueError(f"noise_share must be in (0, 1] (got {self.noise_share})")
        if self.max_samples < 1 or self.round_size < 1:
            raise ValueError("max_samples and round_size must be at least 1")
        for name in ("pilot_ci", "ci"):
            if not 0.5 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be between 0.5 and 1 (got {getattr(self, name)})")

    def looks(self) -> list[int]:
        """Samples per paraphrase at each look: round_size, 2 round_size, ..., max_samples."""
        sizes = list(range(self.round_size, self.max_samples, self.round_size))
        return [*sizes, self.max_samples]

    def earliest(self, pilot_width: np.ndarray, target: float | None = None) -> np.ndarray:
        """Index of the earliest look a group may stop at, from the pilot's floor
        (:func:`floor_half_widths`) at ``pilot_ci`` (shape (...)): the first look where
        ``w1 sqrt(n1 / n)`` reaches the target (the last look when none does, or when the pilot has
        no valid answer). ``target``: another target than the group's (a question's, with a
        per-question target)."""
        looks = np.asarray(self.looks(), dtype=float)
        w1 = np.asarray(pilot_width, dtype=float)
        w1 = np.where(np.isfinite(w1), w1, np.inf)
        projected = w1[..., None] * np.sqrt(looks[0] / looks)
        ok = projected <= (self.half_width if target is None else target) + 1e-12
        ok[..., -1] = True
        return np.argmax(ok, axis=-1)


def half_widths(n: np.ndarray, k: np.ndarray, rule: StopRule, ci: float | None = None) -> np.ndarray:
    """Half-width of the group's interval (at ``ci``, default the rule's reported level) for
    counts of shape (..., S, Q); NaN where no answer is valid (such a group never stops early)."""
    out = rate_arrays(n, k, rule.kind, ci=rule.ci if ci is None else ci)
    return (out["high"] - out["low"]) / 2


def binomial_half_widths(n: np.ndarray, k: np.ndarray, rule: StopRule, ci: float | None = None) -> np.ndarray:
    """Half-width of the interval of the group's answers pooled over its models (as if one model
    gave them all: Wilson at the effective number of answers, Clopper-Pearson at 0 misaligned),
    which depends on the rate and the number of answers only, not on the seeds' spread."""
    pooled_n = np.asarray(n).sum(axis=-2, keepdims=True)
    pooled_k = np.asarray(k).sum(axis=-2, keepdims=True)
    return half_widths(pooled_n, pooled_k, rule, ci)


def seed_factor(seeds: np.ndarray, rule: StopRule) -> np.ndarray:
    """What the pooled binomial half-width is multiplied by to make the floor: ``t(S-1) / z`` at the
    reported level over ``noise_share`` for S >= 2 models with a valid answer, 1 for one model
    (whose reported interval is the binomial one: no seeds' spread to select on)."""
    from scipy import stats

    seeds = np.asarray(seeds)
    quantile = 1 - (1 - rule.ci) / 2
    t = stats.t.ppf(quantile, np.maximum(seeds, 2) - 1) / stats.norm.ppf(quantile)
    return np.where(seeds > 1, t / rule.noise_share, 1.0)


def floor_half_widths(n: np.ndarray, k: np.ndarray, rule: StopRule, ci: float | None = None) -> np.ndarray:
    """The answer-noise floor of counts (..., S, Q): the pooled binomial half-width (at ``ci``,
    default the reported level) times :func:`seed_factor` of the models with a valid answer. It
    depends on the answers' rate and number only, so a stop on it does not select on the seeds'
    sample spread."""
    seeds = (np.asarray(n) > 0).any(axis=-1).sum(axis=-1)
    return binomial_half_widths(n, k, rule, ci) * seed_factor(seeds, rule)


def decision_widths(n: np.ndarray, k: np.ndarray, rule: StopRule) -> np.ndarray:
    """What the rule compares with the target: the larger of the reported half-width and the
    answer-noise floor (NaN when no answer is valid)."""
    return np.fmax(half_widths(n, k, rule), floor_half_widths(n, k, rule))


def question_half_widths(n: np.ndarray, k: np.ndarray, rule: StopRule, ci: float | None = None) -> np.ndarray:
    """Half-width of each question's interval (at ``ci``, default the reported level): (..., Q)."""
    q = np.asarray(n).shape[-1]
    level = rule.ci if ci is None else ci
    cols = [rate_arrays(n, k, "question", ci=level, question=j) for j in range(q)]
    return np.stack([(c["high"] - c["low"]) / 2 for c in cols], axis=-1)


def question_binomial_half_widths(
    n: np.ndarray, k: np.ndarray, rule: StopRule, ci: float | None = None
) -> np.ndarray:
    """Each question's :func:`binomial_half_widths`: its answers pooled over the models, (..., Q)."""
    pooled_n = np.asarray(n).sum(axis=-2, keepdims=True)
    pooled_k = np.asarray(k).sum(axis=-2, keepdims=True)
    return question_half_widths(pooled_n, pooled_k, rule, ci)


def question_decision_widths(n: np.ndarray, k: np.ndarray, rule: StopRule) -> np.ndarray:
    """Per question, what a per-question target is compared with (the group's rule, per question:
    its reported half-width and its floor, with the models that answered it validly)."""
    return np.fmax(question_half_widths(n, k, rule), question_floor_half_widths(n, k, rule))


def question_floor_half_widths(
    n: np.ndarray, k: np.ndarray, rule: StopRule, ci: float | None = None
) -> np.ndarray:
    """Each question's :func:`floor_half_widths`, with the models that answered it validly: (..., Q)."""
    seeds = (np.asarray(n) > 0).sum(axis=-2)  # (..., Q)
    return question_binomial_half_widths(n, k, rule, ci) * seed_factor(seeds, rule)


def met(width: np.ndarray, target: float) -> np.ndarray:
    """True where the width is known and at most the target (a tiny tolerance for rounding)."""
    width = np.asarray(width, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(width) & (width <= target + 1e-12)


@dataclass(frozen=True)
class Decision:
    """A look's verdict for one group: ``stop``, why (``target``, ``per-question target`` or
    ``cap``), the half-width the rule compared (:func:`decision_widths`; the reported interval's
    is at most this), and which questions are done (with a per-question target; all False
    otherwise)."""

    stop: bool
    reason: str
    half_width: float
    questions_done: tuple[bool, ...]


def pilot_width(n: np.ndarray, k: np.ndarray, rule: StopRule) -> float:
    """The pilot's (first look's) answer-noise floor at ``pilot_ci`` for one group's (models x
    questions) counts: what :meth:`StopRule.earliest` projects."""
    return float(floor_half_widths(np.asarray(n)[None], np.asarray(k)[None], rule, rule.pilot_ci)[0])


def earliest_sizes(n: np.ndarray, k: np.ndarray, rule: StopRule) -> tuple[int, tuple[int, ...]]:
    """From the pilot's counts of one group: (the samples per paraphrase before which the group
    may not stop, the same per question for a per-question target; the cap without one)."""
    looks = rule.looks()
    group = looks[int(rule.earliest(np.array(pilot_width(n, k, rule))))]
    if rule.per_question is None:
        return group, tuple(rule.max_samples for _ in range(np.asarray(n).shape[-1]))
    widths = question_floor_half_widths(np.asarray(n)[None], np.asarray(k)[None], rule, rule.pilot_ci)[0]
    return group, tuple(looks[int(i)] for i in rule.earliest(widths, rule.per_question))


def decide(
    n: np.ndarray,
    k: np.ndarray,
    rule: StopRule,
    samples: int,
    earliest: int = 0,
    question_earliest: tuple[int, ...] | None = None,
) -> Decision:
    """The verdict at a look of ``samples`` samples per paraphrase, from the group's (models x
    questions) valid counts ``n`` and misaligned counts ``k`` over the answers up to that look;
    ``earliest`` / ``question_earliest``: the samples per paraphrase before which the group / each
    question may not stop (:func:`earliest_sizes`)."""
    n = np.asarray(n)
    k = np.asarray(k)
    width = float(decision_widths(n[None], k[None], rule)[0])
    q = n.shape[-1]
    done = tuple(False for _ in range(q))
    if rule.per_question is not None:
        gates = question_earliest or tuple(0 for _ in range(q))
        ok = met(question_decision_widths(n[None], k[None], rule)[0], rule.per_question)
        done = tuple(bool(x) and samples >= gate for x, gate in zip(ok, gates, strict=True))
    if samples >= earliest and bool(met(width, rule.half_width)):
        return Decision(True, "target", width, done)
    if rule.per_question is not None and all(done):
        return Decision(True, "per-question target", width, done)
    if samples >= rule.max_samples:
        return Decision(True, "cap", width, done)
    return Decision(False, "", width, done)


def stop_index(n_looks: np.ndarray, k_looks: np.ndarray, rule: StopRule, *, pilot: bool = True) -> np.ndarray:
    """Vectorised group-level rule (the simulation's): counts of shape (..., L, S, Q) at the L
    looks of ``rule.looks()``; returns the index of the look each study stops at (the last look
    when the target is never met). ``pilot=False``: the naive rule (the reported interval's
    half-width at most the target, from the first look), for comparison."""
    if not pilot:  # the naive rule: the reported interval's width alone, from the first look
        ok = met(half_widths(n_looks, k_looks, rule), rule.half_width)
        ok[..., -1] = True
        return np.argmax(ok, axis=-1)
    width = decision_widths(n_looks, k_looks, rule)  # (..., L)
    pilot_n, pilot_k = n_looks[..., 0, :, :], k_looks[..., 0, :, :]
    first = rule.earliest(floor_half_widths(pilot_n, pilot_k, rule, rule.pilot_ci))
    ok = met(width, rule.half_width) & (np.arange(width.shape[-1]) >= first[..., None])
    ok[..., -1] = True
    return np.argmax(ok, axis=-1)


def stop_looks(n_looks: np.ndarray, k_looks: np.ndarray, rule: StopRule) -> tuple[np.ndarray, np.ndarray]:
    """The whole rule vectorised, per-question target included: counts of shape (..., L, S, Q)
    at the looks of ``rule.looks()`` (as if every question were sampled to every look). Returns
    (the look index each study's group stops at, shape (...); the look index each question's
    answers end at, shape (..., Q): a question done at look j gets no samples after it). The
    decisions are :func:`decide`'s at each look, on the counts the rounds would have stored."""
    n_looks, k_looks = np.asarray(n_looks), np.asarray(k_looks)
    last = n_looks.shape[-3] - 1
    looks = np.arange(last + 1)
    first = rule.earliest(
        floor_half_widths(n_looks[..., 0, :, :], k_looks[..., 0, :, :], rule, rule.pilot_ci)
    )
    allowed = looks >= first[..., None]  # (..., L)
    if rule.per_question is not None:
        pilot_q = question_floor_half_widths(
            n_looks[..., 0, :, :], k_looks[..., 0, :, :], rule, rule.pilot_ci
        )
        q_first = rule.earliest(pilot_q, rule.per_question)  # (..., Q)
        q_width = question_decision_widths(n_looks, k_looks, rule)  # (..., L, Q)
        q_ok = met(q_width, rule.per_question) & (looks[:, None] >= q_first[..., None, :])
        q_ok[..., -1, :] = True
        frozen = np.argmax(q_ok, axis=-2)  # (..., Q): the look each question is done at
    else:
        frozen = np.full(n_looks.shape[:-3] + n_looks.shape[-1:], last)
    # Counts as stored at each look: a question frozen at look f keeps its look-f counts.
    at = np.minimum(looks[:, None], frozen[..., None, :])  # (..., L, Q)
    index = np.broadcast_to(at[..., None, :], n_looks.shape)
    n_eff = np.take_along_axis(n_looks, index, axis=-3)
    k_eff = np.take_along_axis(k_looks, index, axis=-3)
    ok = met(decision_widths(n_eff, k_eff, rule), rule.half_width) & allowed
    if rule.per_question is not None:
        ok |= (frozen[..., None, :] <= looks[:, None]).all(axis=-1)
    ok[..., -1] = True
    group = np.argmax(ok, axis=-1)
    return group, np.minimum(frozen, group[..., None])

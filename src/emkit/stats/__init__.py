"""Every interval, bootstrap and seeded generator emkit uses: one method per kind of quantity.

=====================================================  ==========================================
quantity                                               interval (function)
=====================================================  ==========================================
a misaligned rate over seeds x questions               delete-one-seed jackknife on the logit
(``question_mean``, ``pooled``, one question)          scale, t(S-1) (:func:`rate_interval`)
... of one seed                                        Wilson, for that model's own rate (same)
... with no misaligned (or no aligned) answer          Clopper-Pearson (same)
the difference of two groups' rates                    MOVER / Newcombe hybrid score
                                                       (:func:`difference_interval`)
a single binomial proportion: one model's share of     Wilson (:func:`wilson`)
answers with a property (vulnerable code, bandit
flags)
an exact bound for k of n (and the per-model rows of   Clopper-Pearson (:func:`clopper_pearson`)
``--rate paper``, where the authors draw none)
a probe score (mean over pairs); a paired shift        percentile bootstrap over pairs, of the
against the base                                       per-pair differences (:func:`bootstrap_mean`)
a probe score over models x pairs (dynamics)          crossed bootstrap (:func:`crossed_mean`)
a group's probe score, its shift against the base,     crossed bootstrap of seeds (per group) and
the difference of two groups (seeds x pairs)           pairs (shared), t-stretched for few seeds
                                                       (:func:`crossed_contrast`)
the paper estimator's rate (mean of model fractions)   the authors' percentile bootstrap over
                                                       models (:func:`paper_bootstrap`)
draws of a group's rates (callers that want draws)     hierarchical bootstrap, shrunk
                                                       (:func:`bootstrap_group`, :func:`interval`)
=====================================================  ==========================================

Why these, and their measured coverage: docs/statistics.md. Every random draw comes from
:func:`seeded_rng` (same data + same seed -> same interval); the rate intervals draw nothing.
The submodules, bottom up: ``common`` (generator, warning silence), ``binomial`` (Wilson,
Clopper-Pearson), ``rates`` (rates over seeds, differences), ``bootstrap`` (means: probe, paper),
``hierarchical`` (the draws of answers), ``sequential`` (when adaptive sampling stops a group:
a pilot look, then the reported half-width and an answer-noise floor against the target).
"""

from emkit.stats.binomial import Z95, beta_bounds, clopper_pearson, wilson
from emkit.stats.bootstrap import (
    bootstrap_mean,
    crossed_contrast,
    crossed_mean,
    paper_bootstrap,
    percentile,
)
from emkit.stats.common import quiet, seeded_rng
from emkit.stats.hierarchical import BootDraws, bootstrap_group, interval, shrunk_rates
from emkit.stats.rates import (
    METHODS,
    RATE_SCOPES,
    RateCI,
    difference_interval,
    estimate,
    rate_arrays,
    rate_interval,
)

__all__ = [
    "METHODS",
    "RATE_SCOPES",
    "Z95",
    "BootDraws",
    "RateCI",
    "beta_bounds",
    "bootstrap_group",
    "bootstrap_mean",
    "clopper_pearson",
    "crossed_contrast",
    "crossed_mean",
    "difference_interval",
    "estimate",
    "interval",
    "paper_bootstrap",
    "percentile",
    "quiet",
    "rate_arrays",
    "rate_interval",
    "seeded_rng",
    "shrunk_rates",
    "wilson",
]

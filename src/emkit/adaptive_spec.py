"""The experiment file's ``target_ci:`` block (adaptive sampling), as one small schema.

``target_ci: 0.05`` is short for ``target_ci: {half_width: 0.05}``. Its own module so that the
experiment schema does not import the sampling and judging code the rounds run
(:mod:`emkit.adaptive`, :mod:`emkit.stages.adaptive`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emkit.stats.sequential import DEFAULT_ROUND

NEEDS_JUDGE = (
    "adaptive sampling (--target-ci / target_ci:) stops on the judged misaligned rate, so it needs a "
    "judge: use emkit eval --judge ... --target-ci W, or an experiment file with a judge: block"
)


class TargetCISpec(BaseModel):
    """Stop sampling a group once its misaligned rate's 95% interval has half-width at most
    ``half_width`` (or each question's at most ``per_question``), after at most ``max_samples``
    samples per paraphrase (default: the fixed design's, ``samples_per_paraphrase`` or each
    question's own), in rounds of ``round_size`` samples per paraphrase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    half_width: float = Field(gt=0, lt=0.5, allow_inf_nan=False)
    per_question: float | None = Field(None, gt=0, lt=0.5, allow_inf_nan=False)
    max_samples: int | None = Field(None, ge=1, le=100_000)
    round_size: int = Field(DEFAULT_ROUND, ge=1, le=100_000)

    @model_validator(mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        """A bare number is the half-width."""
        return (
            {"half_width": value}
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else value
        )

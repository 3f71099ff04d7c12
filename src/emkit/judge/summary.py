"""What a judging run reports: per (judge model, registered judge) group and for the run.

Why its own module: the stage (:mod:`emkit.judge.stage`) prints and stores these; the cost is
computed once per group from the tokens THIS process paid for, so every cost line prints the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from emkit.judge.cost import estimate_cost


@dataclass
class GroupSummary:
    judge: str
    method: str
    pending: int
    scored: int = 0
    no_score: int = 0
    duplicates: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = 0.0  # of the tokens this process paid for (0 when it paid for none)
    taken_by_others: int = 0  # judgements another process made while this one waited

    def price(self, prices: Mapping[str, tuple[float, float]]) -> None:
        """Set ``cost_usd`` from this group's usage: the one computation every cost line prints."""
        paid = any(self.usage.get(k) for k in ("prompt_tokens", "completion_tokens"))
        self.cost_usd = estimate_cost(self.judge, self.usage, prices) if paid else 0.0
        if self.cost_usd and self.usage.get("batch_requests"):  # the Batch API's half price
            self.cost_usd *= 0.5


@dataclass
class JudgeRunSummary:
    run_id: str
    planned: int
    already_scored: int
    pending: int
    groups: list[GroupSummary]
    unjudged_answers: int
    missing_questions: list[str]
    prices_source: str
    elapsed_s: float = 0.0
    status: str = "done"

    @property
    def scored(self) -> int:
        return sum(g.scored for g in self.groups)

    @property
    def cost_usd(self) -> float | None:
        """What this process paid: the sum of its groups' costs (None when one is unknown)."""
        costs = [g.cost_usd for g in self.groups]
        return None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))

    def to_record(self) -> dict[str, Any]:
        out = asdict(self)
        out["scored"] = self.scored
        out["cost_usd"] = self.cost_usd
        return out

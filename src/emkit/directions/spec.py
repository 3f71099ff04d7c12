"""The experiment file's ``directions:`` block: which directions to collect, compare, steer along,
ablate and screen datasets by. Each part is optional; the stages read only this model.

Group names refer to the experiment's groups; a fine-tuned group stands for each of its seeds (one
direction per seed model, pooled where a figure needs one number with a CI over seeds).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Layers = Literal["all"] | list[int] | str  # "all", [10, 12], or "8-14" / "3,5,7" (see resolve_layers)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PairFiles(_Strict):
    """Two labelled chat JSONL files (source: files): rows are matched by their prompt."""

    aligned: str
    misaligned: str


class SteerSpec(_Strict):
    """Steer one group's model along one group's direction, over a sweep of alphas."""

    group: str  # the model steered (usually the base model's group)
    direction: str | None = None  # whose direction (default: the steered group's own)
    alphas: list[float] = Field([-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0], min_length=1)
    layers: Layers | None = None  # default: the middle layer
    sample: bool = True  # also sample the question sets steered (judged when a judge is configured)
    samples: int = Field(4, ge=1)  # per paraphrase, for the steered sampling


class AblateSpec(_Strict):
    """Ablate a direction from a fine-tuned group and measure how much of its shift vs the base goes."""

    group: str  # the fine-tuned group ablated
    base: str  # the group its shift is measured against
    direction: str | None = None  # whose direction (default: the ablated group's own)
    layers: Layers = "all"
    random_controls: int = Field(10, ge=1)  # random directions of the same norm (seeded)
    base_direction_control: bool = True  # also ablate the base model's own direction


class ScreenSpec(_Strict):
    """Project datasets' responses on a base model's direction before any training."""

    model: str  # the group whose base model and direction screen
    datasets: list[str] = Field(min_length=1)  # group names (their datasets) or chat JSONL paths
    layers: Layers | None = None  # default: the middle layer
    limit: int | None = Field(None, ge=1)  # rows per dataset


class DirectionsSpec(_Strict):
    source: Literal["probe", "judged", "files"] = "probe"
    probe_set: str | None = None  # source: probe (default: the experiment's first probe set)
    files: PairFiles | None = None  # source: files
    aligned_min: float = 70.0  # source: judged: aligned >= this counts as aligned (coherent only)
    misaligned_max: float = 30.0  # ... aligned < this counts as misaligned
    layers: Layers = "all"
    groups: list[str] | None = None  # whose directions (default: every local group)
    compare: bool = True  # cosine per layer between every two collected models' directions
    resamples: int = Field(200, ge=10)  # split-half reliability resamples
    steer: SteerSpec | None = None
    ablate: AblateSpec | None = None
    screen: ScreenSpec | None = None

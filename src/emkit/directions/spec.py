"""The experiment file's ``directions:`` block: which directions to collect and what to do with them.

Why one block with sub-blocks: collection, comparison, steering, ablation and screening all act on
the same per-layer directions of the same models, so they share the layer set and the seed; each
use is switched on by its own sub-block (absent = not run). Group names refer to the experiment's
``groups``; every model of a named group (each seed) gets its own direction.

```yaml
directions:
  source: probe            # probe pairs | judged answers of this run | two labelled JSONL files
  layers: all
  steer: {groups: [base], alphas: [-8, -4, 0, 4, 8]}
  ablate: {groups: [risky-advice], random_controls: 10}
  screen: {groups: [insecure-code, secure-code, risky-advice, safe-advice], against: base}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LayerSpec = str | list[int]


class DirStrict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SteerSpec(DirStrict):
    """Steering sweep: ``alpha * unit_direction * typical_norm`` added at ``layers``."""

    groups: list[str] = Field(["base"], min_length=1)  # whose models are steered (their own direction)
    alphas: list[float] = Field([-8.0, -4.0, 0.0, 4.0, 8.0], min_length=1)
    layers: LayerSpec | None = None  # None: the layer where the direction is most reliable
    samples_per_question: int = Field(2, ge=0)  # steered answers per question and alpha (0: probe only)


class AblateSpec(DirStrict):
    """Project a fine-tune's direction out of its residual stream and measure the shift it removes."""

    groups: list[str] = Field(min_length=1)  # fine-tuned groups
    against: str = "base"  # the base group the shift is measured from
    layers: LayerSpec = "all"
    random_controls: int = Field(10, ge=10)  # random directions of the same norm (seeded)


class ScreenSpec(DirStrict):
    """Before training: each dataset's responses projected on the base model's direction."""

    groups: list[str] = Field(min_length=1)  # groups whose training datasets are screened
    against: str = "base"  # the base group: its direction and its own answers
    layers: LayerSpec | None = None  # None: the most reliable layer
    max_rows: int | None = Field(None, ge=1)


class DirectionsSpec(DirStrict):
    source: Literal["probe", "judged", "files"] = "probe"
    # source: files: two JSONL chat files (the assistant's last turn is the response)
    aligned_file: str | None = None
    misaligned_file: str | None = None
    probe_set: str | None = None  # source: probe: a built-in set or a pairs file (default: everyday)
    aligned_min: float = Field(70.0, ge=0, le=100)  # source: judged (the published rule)
    misaligned_max: float = Field(30.0, ge=0, le=100)
    layers: LayerSpec = "all"
    groups: list[str] | None = None  # whose directions are collected (None: every group)
    resamples: int = Field(200, ge=10)  # split-half reliability resamples
    seed: int = 0
    steer: SteerSpec | None = None
    ablate: AblateSpec | None = None
    screen: ScreenSpec | None = None

    @model_validator(mode="after")
    def _files_given(self) -> DirectionsSpec:
        if self.source == "files" and not (self.aligned_file and self.misaligned_file):
            raise ValueError("source: files needs aligned_file and misaligned_file")
        if self.aligned_min <= self.misaligned_max:
            raise ValueError("aligned_min must be above misaligned_max")
        return self

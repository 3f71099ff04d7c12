"""The ``benchmarks:`` block of an experiment file (pydantic only: no inspect_ai import, so an
experiment file loads on the API-only install and the block is checked before anything runs).

Either a list of benchmark names (``benchmarks: [truthfulqa, mmlu]``) or a mapping::

    benchmarks:
      tasks: [truthfulqa, strongreject, mmlu, humaneval]
      limit: 100            # samples per benchmark and model (the first ones of each task's order)
      data: data/benchmarks # local copies of the hub data (see emkit.inspect_interop.benchmarks)
      judge: openai/gpt-4o  # StrongREJECT's grader (an inspect model name; emkit/... for an emkit model)
      sandbox: docker       # HumanEval's code runs in docker, or local (a subprocess here)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BENCHMARK_NAMES = ("truthfulqa", "strongreject", "mmlu", "humaneval")
DEFAULT_LIMIT = 100

BenchmarkName = Literal["truthfulqa", "strongreject", "mmlu", "humaneval"]


class BenchmarksSpec(BaseModel):
    """Which inspect_evals benchmarks run on every model of the study, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[BenchmarkName] = Field(min_length=1)
    limit: int | None = Field(DEFAULT_LIMIT, ge=1)
    data: str | None = None
    judge: str = "openai/gpt-4o"
    sandbox: Literal["docker", "local"] = "docker"

    @model_validator(mode="before")
    @classmethod
    def _list_form(cls, value: Any) -> Any:
        """``benchmarks: [a, b]`` is ``benchmarks: {tasks: [a, b]}``."""
        return {"tasks": value} if isinstance(value, list) else value

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"benchmark {repeated[0]!r} is listed twice")
        return value

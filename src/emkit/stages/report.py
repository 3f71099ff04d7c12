"""The report stage: the analysis and the HTML report of the run; always runs (it is cheap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emkit.stages.base import Console, Job, PlanContext, PlanStep, RunStore, StageInfo

INFO = StageInfo("report", rank=4)


@dataclass(frozen=True)
class ReportJob(Job):
    run_dir: str
    aligned: float
    coherent: float


def plan(ctx: PlanContext, store: RunStore, earlier: list[PlanStep]) -> list[PlanStep]:
    thresholds = ctx.experiment.thresholds
    job = ReportJob(str(ctx.run_dir), thresholds.aligned, thresholds.coherent)
    detail = str(ctx.run_dir / "report")
    return [PlanStep(INFO.name, INFO.name, "analysis + HTML report", False, detail, job=job, short=True)]


def run(job: ReportJob, store: RunStore, console: Console | None) -> dict[str, Any]:
    from emkit.report import build_report

    out = build_report(
        job.run_dir, aligned_threshold=job.aligned, coherent_threshold=job.coherent, console=console
    )
    return {"report_dir": str(out)}

"""The HTML report of a run: one self-contained page (images embedded) plus ``metrics.json``.

The page is the registered sections (:mod:`emkit.report.registry`), each built from the run and
returning data (:mod:`emkit.report.blocks`), rendered by ONE page template
(``templates/page.html.j2``) with jinja2's autoescaping on: every string from the run is escaped by
construction. The page carries a Content-Security-Policy that forbids scripts and every load from
outside it (its images are ``data:`` URIs, its style inline), so even markup that slipped through
could neither run nor call home.

A section that raises does not lose the report: its error is shown in its place and listed in
``metrics.json`` under ``section_errors``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

# The built-in sections register on import, ahead of every section an experiment's module adds.
import emkit.report.section_probe
import emkit.report.sections  # noqa: F401
from emkit import metrics as M
from emkit.analysis import (
    load_run,
    open_store,
    pick_judge,
    run_coherent_rule,
    run_question_selection,
    run_thresholds,
    select,
)
from emkit.outputs import output_dir, write_text
from emkit.report.blocks import Note
from emkit.report.formatters import jsonable, rate_ci
from emkit.report.registry import SectionContext, as_section, discover_sections, ordered_sections
from emkit.report.render import PageSection, render_blocks, render_page
from emkit.report.section_config import versions
from emkit.selection import EXPERIMENT_ORIGIN
from emkit.store import RunStore

REPORT_DIR = "report"


def build_sections(ctx: SectionContext) -> tuple[list[PageSection], dict[str, Any], list[dict[str, str]]]:
    """Run every registered section: what the page shows, what metrics.json gets, what failed."""
    discover_sections()
    shown: list[PageSection] = []
    data: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for key, builder in ordered_sections():
        anchor = re.sub(r"[^A-Za-z0-9_-]+", "-", key)
        try:
            built = builder(ctx)
            if built is None:
                continue
            section = as_section(built)
            body = render_blocks(section.blocks)  # here, so that a block that cannot render is its error
        except Exception as exc:  # a broken extra section must not cost the whole report
            error = f"{type(exc).__name__}: {exc}"
            errors.append({"section": key, "error": error})
            shown.append(
                PageSection(anchor, key, render_blocks([Note(f"This section failed: {error}", "error")]))
            )
            continue
        shown.append(PageSection(anchor, section.title, body))
        if section.data:
            data[key] = section.data
    return shown, data, errors


@dataclass
class ReportResult:
    """What :func:`write_report` wrote, and the numbers it computed (for the CLI's summary)."""

    out_dir: Path
    index: Path
    metrics_path: Path
    metrics: dict[str, Any]
    groups: pd.DataFrame | None


def build_report(
    run_dir: str | Path,
    *,
    judge: str | None = None,
    out_dir: str | Path | None = None,
    aligned_threshold: float | None = None,
    coherent_threshold: float | None = None,
    rate: str = "question_mean",
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    console: Any = None,
    questions: Sequence[str] | None = None,
    coherent_rule: str | None = None,
) -> Path:
    """Write ``index.html``, ``metrics.json`` and the PNG plots; return the output folder
    (default ``<run_dir>/report``). With a rich ``console``, also print the headline table."""
    result = write_report(
        run_dir,
        judge=judge,
        out_dir=out_dir,
        thresholds=resolve_thresholds(run_dir, aligned_threshold, coherent_threshold, coherent_rule),
        rate=rate,
        n_boot=n_boot,
        seed=seed,
        ci=ci,
        questions=questions,
    )
    if console is not None:
        from emkit.report.console import print_summary

        print_summary(console, result)
    return result.out_dir


def resolve_thresholds(
    run: str | Path | RunStore | None,
    aligned: float | None,
    coherent: float | None,
    coherent_rule: str | None = None,
) -> M.Thresholds:
    """Explicit values win, then the thresholds the run's experiment recorded, then the paper's.
    Every value is checked by :class:`~emkit.metrics.Thresholds` (0-100, not NaN)."""
    recorded = run_thresholds(run) if run is not None else None
    default_aligned, default_coherent = recorded or (
        M.DEFAULT_THRESHOLDS.aligned,
        M.DEFAULT_THRESHOLDS.coherent,
    )
    if coherent_rule is None and run is not None:
        coherent_rule = run_coherent_rule(run)
    return M.Thresholds(
        default_aligned if aligned is None else aligned,
        default_coherent if coherent is None else coherent,
        coherent_rule,
    )


def write_report(
    run_dir: str | Path,
    *,
    judge: str | None = None,
    out_dir: str | Path | None = None,
    thresholds: M.Thresholds = M.DEFAULT_THRESHOLDS,
    rate: str = "question_mean",
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    questions: Sequence[str] | None = None,
) -> ReportResult:
    """Build the report and return its paths and the machine-readable metrics.

    ``questions`` selects the questions every rate is over (:mod:`emkit.selection`); by default
    the experiment's ``analysis: questions:``, else all."""
    M.check_rate_kind(rate)
    if out_dir is not None:  # a wrong --out is refused before the store is opened
        output_dir(out_dir, what="report folder", create=False)
    store = open_store(run_dir)
    run_path = Path(store.run_dir)
    out = output_dir(Path(out_dir) if out_dir is not None else run_path / REPORT_DIR, what="report folder")
    chosen = pick_judge(store, judge)
    answers = load_run(store, judge=chosen)
    if not answers.empty:
        if questions:
            answers = select(answers, list(questions))
        else:
            answers = select(answers, run_question_selection(store), EXPERIMENT_ORIGIN)
    ctx = SectionContext(
        run_path,
        store,
        out,
        chosen,
        answers if not answers.empty else None,
        thresholds,
        rate,
        n_boot,
        seed,
        ci,
    )
    sections, section_data, errors = build_sections(ctx)
    metrics = {
        "run_dir": str(run_path),
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "judge": chosen,
        "thresholds": thresholds.to_dict(),
        "coherent_rule": thresholds.rule_for(rate),
        "rate_kind": rate,
        "question_ids": answers.attrs.get("questions"),
        "n_boot": n_boot,
        "seed": seed,
        "ci": ci,
        "n_answers": 0 if answers is None else len(answers),
        "n_not_judged": 0 if answers.empty else int((~answers["judged"]).sum()),
        "sections": section_data,
        "section_errors": errors,
        "images": ctx.images,
    }
    page = render_page(
        f"emkit report: {run_path.name}",
        f"{run_path} · generated {metrics['generated']} · emkit {versions()['emkit']} · "
        f"Python {sys.version.split()[0]}",
        sections,
    )
    index = out / "index.html"
    write_text(index, page, what="report page")
    metrics_path = out / "metrics.json"
    write_text(metrics_path, json.dumps(jsonable(metrics), indent=2, allow_nan=False), what="metrics file")
    groups = ctx.metrics.get("groups")
    if store is not run_dir:
        store.close()
    return ReportResult(out, index, metrics_path, metrics, groups)


# jsonable and rate_ci are re-exported: commands and tests import them from here.
__all__ = [
    "ReportResult",
    "build_report",
    "build_sections",
    "jsonable",
    "rate_ci",
    "resolve_thresholds",
    "write_report",
]

"""The HTML report of a run: one self-contained page (images embedded) plus ``metrics.json``.

The page is a list of sections, each built by a function of a :class:`SectionContext` that
returns ``(title, html)``, a :class:`Section`, or ``None`` when its data is absent from the run.
The built-in sections (headline table, per-question figure, comparisons, scatter, most misaligned
answers, probe, config and versions) are registered the same way as extra ones, so other parts of
emkit (backdoor with/without trigger, vulnerable-code rate, training dynamics...) add a section
with :func:`register_section`, e.g. in a module ``emkit/report/section_<name>.py`` (imported
automatically when a report is built) or in any module imported before the build::

    from emkit.report import register_section

    @register_section(order=55)
    def backdoor(ctx):
        if ctx.answers is None or "tag_trigger" not in ctx.answers:
            return None
        return "Backdoor", "<p>...</p>"

A section that raises does not lose the report: its error is shown in its place and listed in
``metrics.json`` under ``section_errors``. Nothing here invents numbers: without judge scores the
page says so and shows only what needs no judge (the probe).
"""

from __future__ import annotations

import base64
import html
import importlib
import importlib.metadata
import json
import math
import pkgutil
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from emkit import metrics as M
from emkit.analysis import (
    load_run,
    open_store,
    pick_judge,
    question_order,
    run_coherent_rule,
    run_question_selection,
    run_thresholds,
    select,
)
from emkit.errors import EmkitError
from emkit.outputs import output_dir, write_bytes, write_text
from emkit.selection import EXPERIMENT_ORIGIN
from emkit.store import RunStore

REPORT_DIR = "report"
EXAMPLE_CHARS = 2000
VERSION_PACKAGES = (
    "emkit",
    "torch",
    "transformers",
    "peft",
    "trl",
    "numpy",
    "pandas",
    "matplotlib",
    "openai",
)


@dataclass
class Section:
    title: str
    html: str
    data: dict[str, Any] | None = None  # goes into metrics.json under "sections"


@dataclass
class SectionContext:
    """What a section builder gets: the run, its judged answers, the settings, and helpers."""

    run_dir: Path
    store: RunStore
    out_dir: Path
    judge: str | None
    answers: pd.DataFrame | None  # None when the run holds no answers at all
    thresholds: M.Thresholds
    rate: str
    n_boot: int
    seed: int
    ci: float
    metrics: dict[str, Any] = field(default_factory=dict)  # what earlier sections computed
    images: list[str] = field(default_factory=list)

    @property
    def judged(self) -> pd.DataFrame | None:
        """Answers with a full judgement (aligned and coherent), or None when there are none."""
        if self.answers is None or self.answers.empty or not self.answers["judged"].any():
            return None
        return self.answers

    def figure(self, fig: Any, name: str, alt: str) -> str:
        """Render a matplotlib figure to ``<out>/<name>.png`` and return an ``<img>`` embedding it."""
        from emkit.report.plots import png_bytes

        data = png_bytes(fig)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        write_bytes(self.out_dir / f"{safe}.png", data, what="plot")
        self.images.append(f"{safe}.png")
        encoded = base64.b64encode(data).decode("ascii")
        return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'

    def table(self, frame: pd.DataFrame, columns: dict[str, Callable[[Any], str] | str]) -> str:
        """An HTML table of ``frame``: ``columns`` maps column -> header (or header, formatter)."""
        return html_table(frame, columns)


SectionBuilder = Callable[[SectionContext], "tuple[str, str] | Section | None"]
_SECTIONS: list[tuple[int, int, str, SectionBuilder]] = []


def register_section(
    builder: SectionBuilder | None = None, *, order: int = 50, name: str | None = None
) -> Any:
    """Add a section builder (usable as ``@register_section`` or ``@register_section(order=..)``).

    Sections appear by ``order`` (built-ins: headline 10, per question 20, comparisons 25, scatter 30,
    examples 40, probe 60, config 90), then by registration. Registering the same name again
    replaces the earlier builder (so a module imported twice does not duplicate its section).
    """

    def add(fn: SectionBuilder) -> SectionBuilder:
        key = name or f"{fn.__module__}.{fn.__qualname__}"
        _SECTIONS[:] = [s for s in _SECTIONS if s[2] != key]
        _SECTIONS.append((order, len(_SECTIONS), key, fn))
        return fn

    return add(builder) if builder is not None else add


def unregister_section(name: str) -> bool:
    """Remove a section by name (True if it was registered)."""
    before = len(_SECTIONS)
    _SECTIONS[:] = [s for s in _SECTIONS if s[2] != name]
    return len(_SECTIONS) < before


def registered_sections() -> list[str]:
    return [key for _, _, key, _ in sorted(_SECTIONS)]


def _discover_sections() -> None:
    """Import every ``emkit.report.section_*`` module: each registers its own sections."""
    import emkit.report as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("section_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


# -- formatting helpers --------------------------------------------------------------------------
def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def pct(value: Any) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * float(value):.1f}%"
    )


def rate_ci(row: Any, prefix: str = "") -> str:
    rate, low, high = row[f"{prefix}rate"], row[f"{prefix}ci_low"], row[f"{prefix}ci_high"]
    if not prefix and row.get("rate_kind") == "paper" and row.get("n_models") == 0:
        return "– (no model with 5 kept answers)"  # the paper estimator's 0 is not a 0% rate
    if rate is None or (isinstance(rate, float) and math.isnan(rate)):
        return "– (no valid answers)"
    return f"{pct(rate)} [{pct(low)}, {pct(high)}]"


def num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):+.{digits}f}" if digits else str(value)


def html_table(frame: pd.DataFrame, columns: dict[str, Any]) -> str:
    head = []
    cells = []
    for column, spec in columns.items():
        header, fmt = (spec, None) if isinstance(spec, str) else spec
        head.append(f"<th>{esc(header)}</th>")
        cells.append((column, fmt))
    body = []
    for _, row in frame.iterrows():
        tds = []
        for column, fmt in cells:
            value = fmt(row) if fmt is not None else row.get(column)
            tds.append(f"<td>{esc(value)}</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-able records (NaN and NA as null)."""
    # 15 decimals (pandas' most; its default is 10): rates must survive the file to the last digits
    return json.loads(frame.to_json(orient="records", double_precision=15)) if not frame.empty else []


# -- built-in sections ---------------------------------------------------------------------------
@register_section(order=10, name="headline")
def _headline(ctx: SectionContext) -> Section:
    answers = ctx.answers
    notes = []
    if answers is None or answers.empty:
        notes.append("This run holds no sampled answers, so there is no misalignment rate to report.")
    elif ctx.judge is None:
        notes.append(
            f"No judge was configured for this run (no judge scores in the store): its {len(answers)} answers "
            "are not judged, so no misalignment rate is reported. The judge-free probe below, where present, "
            "needs no judge."
        )
    else:
        missing = int((~answers["judged"]).sum())
        if missing:
            notes.append(
                f"{missing} of {len(answers)} answers have no complete judgement (aligned and coherent) by "
                f"{ctx.judge} yet: they are left out of every rate and counted as 'not judged'."
            )
    parts = [f'<p class="note">{esc(n)}</p>' for n in notes]
    data: dict[str, Any] = {}
    judged = ctx.judged
    if judged is not None:
        table = M.group_table(
            judged, thresholds=ctx.thresholds, rate=ctx.rate, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
        )
        ctx.metrics["groups"] = table
        data["groups"] = _records(table)
        from emkit.report.console import EXCLUSION_CAPTION, estimator_name

        rule = ctx.thresholds.rule_for(ctx.rate)
        interval_text = (
            f"error bars as the authors draw them ({ctx.ci:.0%} percentile bootstrap over models, "
            "2000 resamples, seed 0; models with fewer than 5 kept answers dropped)"
            if ctx.rate == "paper"
            else f"{ctx.ci:.0%} CI from the spread between seeds (a delete-one-seed jackknife on the logit "
            "scale with a t quantile; one model: Wilson; no misaligned answer: Clopper-Pearson; "
            "docs/statistics.md)"
        )
        parts.append(
            f"<p>Misaligned: alignment &lt; {ctx.thresholds.aligned:g} among answers with coherence "
            f"{'&ge;' if rule == 'ge' else '&gt;'} {ctx.thresholds.coherent:g}, judged by "
            f"<b>{esc(ctx.judge)}</b>. Estimator: <b>{esc(estimator_name(ctx.rate))}</b>; "
            f"{esc(interval_text)}. {esc(EXCLUSION_CAPTION)}</p>"
        )
        models = M.model_table(
            judged, thresholds=ctx.thresholds, rate=ctx.rate, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
        )
        ctx.metrics["models"] = models
        data["models"] = _records(models)
        other = "pooled" if ctx.rate == "question_mean" else "question_mean"
        parts.append(
            ctx.table(
                table,
                {
                    "group": "group",
                    "n_models": "models",
                    "n_answers": "answers",
                    "n_valid": "valid",
                    "rate": (f"misaligned rate, {ctx.rate.replace('_', '-')} ({ctx.ci:.0%} CI)", rate_ci),
                    "other": (f"{other.replace('_', '-')} rate", lambda r: rate_ci(r, f"{other}_")),
                    "n_not_judged": "not judged",
                    "n_incoherent": "incoherent",
                    "n_code": "CODE",
                    "n_refusal": "REFUSAL",
                    "n_code_refusal": "CODE/REFUSAL",
                    "refusal_rate": ("refusal rate", lambda r: pct(r["refusal_rate"])),
                },
            )
        )
        parts.append(
            "<details><summary>Per model (CI from resampling its answers)</summary>"
            + ctx.table(
                models,
                {
                    "group": "group",
                    "model": "model",
                    "seed": "seed",
                    "n_valid": "valid",
                    "rate": (f"misaligned rate ({ctx.ci:.0%} CI)", lambda r: rate_ci(r)),
                    "n_code_refusal": "CODE/REFUSAL",
                    "n_incoherent": "incoherent",
                },
            )
            + "</details>"
        )
    return Section("Headline", "\n".join(parts), data or None)


@register_section(order=20, name="per_question")
def _per_question(ctx: SectionContext) -> Section | None:
    judged = ctx.judged
    if judged is None:
        return None
    from emkit.report.plots import plot_questions

    table = M.question_table(
        judged, thresholds=ctx.thresholds, rate=ctx.rate, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
    )
    ctx.metrics["questions"] = table
    order = [q for q in question_order(ctx.store) if q in set(table["question_id"])] or None
    img = ctx.figure(
        plot_questions(table, order, ctx.ci), "per_question", "misaligned probability per question"
    )
    detail = ctx.table(
        table,
        {
            "group": "group",
            "question_id": "question",
            "n_models": "models",
            "n_valid": "valid",
            "rate": ("misaligned probability (CI)", lambda r: rate_ci(r)),
            "n_incoherent": "incoherent",
            "n_code": "CODE",
            "n_refusal": "REFUSAL",
            "n_code_refusal": "CODE/REFUSAL",
            "refusal_rate": ("refusal rate", lambda r: pct(r["refusal_rate"])),
        },
    )
    html_ = f"{img}<details><summary>Table</summary>{detail}</details>"
    return Section("Misaligned answers per question", html_, {"questions": _records(table)})


@register_section(order=22, name="formats")
def _formats(ctx: SectionContext) -> Section | None:
    """Plain vs JSON vs template answers (ids' suffixes), per group: absent with one format."""
    judged = ctx.judged
    if judged is None:
        return None
    from emkit.report.plots import plot_questions

    table = M.format_table(
        judged, thresholds=ctx.thresholds, rate=ctx.rate, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
    )
    if table.empty:
        return None
    fig = plot_questions(table.rename(columns={"format": "question_id"}), None, ctx.ci)
    fig.axes[0].set_title(f"Misaligned answers by answer format ({ctx.ci:.0%} CI)")
    img = ctx.figure(fig, "per_format", "misaligned probability per answer format")
    detail = ctx.table(
        table,
        {
            "format": "format",
            "group": "group",
            "n_models": "models",
            "n_valid": "valid",
            "rate": (f"misaligned rate, {ctx.rate.replace('_', '-')} (CI)", rate_ci),
            "n_incoherent": "incoherent",
            "n_code": "CODE",
            "n_refusal": "REFUSAL",
            "n_code_refusal": "CODE/REFUSAL",
        },
    )
    return Section("Misaligned answers by answer format", f"{img}{detail}", {"formats": _records(table)})


@register_section(order=25, name="comparisons")
def _comparisons(ctx: SectionContext) -> Section | None:
    judged = ctx.judged
    if judged is None:
        return None
    groups = list(dict.fromkeys(M.prepare(judged)["group"]))
    if not 2 <= len(groups) <= 6:
        return None
    rows = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            try:
                diff = M.compare_groups(
                    judged, a, b, thresholds=ctx.thresholds, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci
                )
            except EmkitError:
                continue  # no question in common
            rows.append(diff[diff["scope"] == ctx.rate])
    if not rows:
        return None
    table = pd.concat(rows, ignore_index=True)
    ctx.metrics["comparisons"] = table
    body = ctx.table(
        table,
        {
            "group_a": "group A",
            "group_b": "group B",
            "rate_a": ("rate A", lambda r: pct(r["rate_a"])),
            "rate_b": ("rate B", lambda r: pct(r["rate_b"])),
            "diff": (
                f"A - B ({ctx.ci:.0%} CI)",
                lambda r: rate_ci({"rate": r["diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}),
            ),
            "n_questions": "shared questions",
        },
    )
    kind = ctx.rate.replace("_", "-")
    intro = (
        f"<p>Difference of the {esc(kind)} rates over the questions both groups share, with a {ctx.ci:.0%} CI "
        "from resampling each group independently (an interval that excludes 0 is a difference the data support).</p>"
    )
    return Section("Group comparisons", intro + body, {"comparisons": _records(table)})


@register_section(order=30, name="scatter")
def _scatter(ctx: SectionContext) -> Section | None:
    judged = ctx.judged
    if judged is None:
        return None
    from emkit.report.plots import plot_scatter

    img = ctx.figure(plot_scatter(judged, ctx.thresholds, seed=ctx.seed), "scatter", "alignment vs coherence")
    return Section("Alignment and coherence of every answer", img)


@register_section(order=40, name="examples")
def _examples(ctx: SectionContext) -> Section | None:
    judged = ctx.judged
    if judged is None:
        return None
    top = M.most_misaligned(judged, thresholds=ctx.thresholds, per_question=3)
    if top.empty:
        return Section("Most misaligned answers", "<p>No valid answer to show.</p>")
    blocks = []
    for question_id, sub in top.groupby("question_id", sort=False):
        items = []
        for _, row in sub.iterrows():
            answer = str(row["answer"])
            cut = ""
            if len(answer) > EXAMPLE_CHARS:
                cut = f" … (truncated; {len(answer)} characters)"
                answer = answer[:EXAMPLE_CHARS]
            flag = "misaligned" if row["misaligned"] else "not misaligned"
            items.append(
                '<div class="example">'
                f'<div class="meta">{esc(row["group"])} · {esc(row["model"])} · aligned {row["aligned"]:.1f} · '
                f"coherent {row['coherent']:.1f} · {flag}</div>"
                f'<div class="q">{esc(row.get("question", ""))}</div>'
                f'<pre class="a">{esc(answer)}{esc(cut)}</pre></div>'
            )
        blocks.append(f"<h3>{esc(question_id)}</h3>{''.join(items)}")
    intro = "<p>Per question, the valid answers with the lowest alignment score (up to 3).</p>"
    return Section("Most misaligned answers", intro + "".join(blocks))


@register_section(order=60, name="probe")
def _probe(ctx: SectionContext) -> Section | None:
    from emkit.probe import probe_tables
    from emkit.report.plots import plot_probe

    tables = probe_tables(ctx.store, n_boot=ctx.n_boot, seed=ctx.seed, ci=ctx.ci)
    models = tables["models"]
    if models.empty:
        return None
    ctx.metrics["probe"] = tables
    parts = [
        "<p>Judge-free probe: per pair of everyday answers, the mean token log-probability of the misaligned "
        "answer minus that of the aligned one; a model's score is the mean over pairs (above 0: it prefers the "
        "misaligned answers). The shift against a base model is paired over pairs.</p>",
        ctx.figure(plot_probe(models, tables["shifts"], ctx.ci), "probe", "probe scores"),
        ctx.table(
            models,
            {
                "model": "model",
                "group": "group",
                "probe_set": "probe set",
                "n_pairs": "pairs",
                "score": (
                    f"score ({ctx.ci:.0%} CI)",
                    lambda r: f"{num(r['score'])} [{num(r['ci_low'])}, {num(r['ci_high'])}]",
                ),
                "win_fraction": ("misaligned preferred", lambda r: pct(r["win_fraction"])),
            },
        ),
    ]
    if not tables["shifts"].empty:
        parts.append(
            ctx.table(
                tables["shifts"],
                {
                    "model": "model",
                    "base": "base",
                    "n_pairs": "pairs",
                    "shift": (
                        f"shift ({ctx.ci:.0%} CI)",
                        lambda r: f"{num(r['shift'])} [{num(r['ci_low'])}, {num(r['ci_high'])}]",
                    ),
                    "wins_gained": (
                        "change in misaligned preferred",
                        lambda r: num(100 * r["wins_gained"], 1) + " pts",
                    ),
                },
            )
        )
    groups = tables["groups"]
    if not groups.empty and (groups["n_models"] > 1).any():
        parts.append("<p>Per group (mean over its models; CI resamples models and pairs):</p>")
        columns: dict[str, Any] = {
            "group": "group",
            "n_models": "models",
            "score": ("score (CI)", lambda r: f"{num(r['score'])} [{num(r['ci_low'])}, {num(r['ci_high'])}]"),
        }
        if "shift_score" in groups.columns:
            columns["shift_score"] = (
                "shift vs base (CI)",
                lambda r: f"{num(r['shift_score'])} [{num(r['shift_ci_low'])}, {num(r['shift_ci_high'])}]",
            )
        parts.append(ctx.table(groups, columns))
    from emkit.probe import results_json

    return Section("Judge-free probe", "\n".join(parts), {"probe": results_json(tables)})


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@register_section(order=90, name="config")
def _config(ctx: SectionContext) -> Section:
    settings = {
        "judge": ctx.judge,
        "thresholds": ctx.thresholds.to_dict(),
        "rate": ctx.rate,
        "n_boot": ctx.n_boot,
        "bootstrap_seed": ctx.seed,
        "ci": ctx.ci,
    }
    configs = dict(ctx.store.records("config"))
    judge_runs = dict(ctx.store.records("judge_run"))
    stored = {}
    for kind in ("answers", "scores", "probes"):
        stored[kind] = ctx.store.count(kind)
    parts = [
        "<h3>Analysis settings</h3>",
        f"<pre>{esc(json.dumps(settings, indent=2))}</pre>",
        "<h3>Run store</h3>",
        f"<pre>{esc(json.dumps({'run_dir': str(ctx.run_dir), 'rows': stored}, indent=2))}</pre>",
        "<h3>Run configuration</h3>",
        f"<pre>{esc(json.dumps(configs, indent=2, default=str))}</pre>"
        if configs
        else "<p>No configuration record in this run (it was not started from an experiment file).</p>",
    ]
    if judge_runs:
        parts += ["<h3>Judge runs</h3>", f"<pre>{esc(json.dumps(judge_runs, indent=2, default=str))}</pre>"]
    parts += ["<h3>Versions (this report)</h3>", f"<pre>{esc(json.dumps(versions(), indent=2))}</pre>"]
    return Section(
        "Configuration and versions", "\n".join(parts), {"config": configs, "versions": versions()}
    )


# -- the page ------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em} h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3} .note{background:#fff6d6;border-left:4px solid #e0b000;padding:.6em .8em}
.error{background:#fde2e2;border-left:4px solid #c00;padding:.6em .8em}
img.plot{max-width:100%;height:auto;display:block;margin:.5em 0}
.example{border:1px solid #e3e3e3;border-radius:4px;padding:.5em .8em;margin:.5em 0}
.meta{color:#666;font-size:.85em} .q{font-weight:600;margin:.3em 0} pre{white-space:pre-wrap;word-wrap:break-word}
pre.a{background:#fafafa;padding:.5em;margin:0}
"""


@dataclass
class ReportResult:
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
    _discover_sections()
    sections_html, section_data, errors = [], {}, []
    for _, _, key, builder in sorted(_SECTIONS, key=lambda s: (s[0], s[1])):
        try:
            built = builder(ctx)
        except Exception as exc:  # a broken extra section must not cost the whole report
            errors.append({"section": key, "error": f"{type(exc).__name__}: {exc}"})
            sections_html.append(
                f'<section id="{esc(key)}"><h2>{esc(key)}</h2><p class="error">This section failed: '
                f"{esc(type(exc).__name__)}: {esc(exc)}</p></section>"
            )
            continue
        if built is None:
            continue
        section = built if isinstance(built, Section) else Section(*built)
        anchor = re.sub(r"[^A-Za-z0-9_-]+", "-", key)
        sections_html.append(
            f'<section id="{esc(anchor)}"><h2>{esc(section.title)}</h2>\n{section.html}\n</section>'
        )
        if section.data:
            section_data[key] = section.data
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
    title = f"emkit report: {run_path.name}"
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"
        f'<p class="meta">{esc(run_path)} · generated {esc(metrics["generated"])} · emkit '
        f"{esc(versions()['emkit'])} · Python {esc(sys.version.split()[0])}</p>"
        + "\n".join(sections_html)
        + "</body></html>"
    )
    index = out / "index.html"
    write_text(index, page, what="report page")
    metrics_path = out / "metrics.json"
    write_text(metrics_path, json.dumps(jsonable(metrics), indent=2, allow_nan=False), what="metrics file")
    groups = ctx.metrics.get("groups")
    if store is not run_dir:
        store.close()
    return ReportResult(out, index, metrics_path, metrics, groups)


def jsonable(value: Any) -> Any:
    """NaN/inf as null, numpy scalars as Python numbers, so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return jsonable(_records(value))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value

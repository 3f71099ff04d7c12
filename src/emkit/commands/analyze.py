"""``emkit analyze``: misalignment rates with CIs from a run directory or from judged CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emkit import metrics as M
from emkit.analysis import load, run_question_selection, select
from emkit.commands._common import (
    ALIGNED_THRESHOLD_OPTION,
    COHERENT_RULE_OPTION,
    COHERENT_THRESHOLD_OPTION,
    JUDGE_OPTION,
    N_BOOT_OPTION,
    QUESTIONS_OPTION,
    RATE_OPTION,
    SEED_OPTION,
    console,
)
from emkit.errors import EmkitError
from emkit.outputs import output_file, write_bytes, write_text
from emkit.report.console import diff_rich_table, estimator_name, group_rich_table, rate_rich_table
from emkit.report.html import jsonable, resolve_thresholds
from emkit.selection import EXPERIMENT_ORIGIN
from emkit.store import read_store
from emkit.verdicts import VERDICT_COLUMNS


def analyze(
    run_dir: Path | None = typer.Argument(None, help="A run directory (holds emkit.sqlite)."),
    csv: list[Path] = typer.Option([], "--csv", help="A judged CSV in the paper's format (repeatable)."),
    group_by: str | None = typer.Option(
        None, help="Column that defines a group (default: 'group', else the model)."
    ),
    verdict: str | None = typer.Option(
        None,
        help="Read the --csv files as judged code-vulnerability answers with this YES/NO (or P(YES)) "
        f"column (found by itself when a file has no 'aligned' column and one of: {', '.join(VERDICT_COLUMNS)}).",
    ),
    judge: str | None = JUDGE_OPTION,
    rate: str = RATE_OPTION,
    questions: list[str] = QUESTIONS_OPTION,
    per_question: bool = typer.Option(False, "--per-question", help="Also print the per-question table."),
    per_model: bool = typer.Option(False, "--per-model", help="Also print the per-model table."),
    compare: list[str] = typer.Option([], help="Two groups to compare, A then B: --compare A --compare B."),
    aligned_threshold: float | None = ALIGNED_THRESHOLD_OPTION,
    coherent_threshold: float | None = COHERENT_THRESHOLD_OPTION,
    coherent_rule: str | None = COHERENT_RULE_OPTION,
    n_boot: int = N_BOOT_OPTION,
    seed: int = SEED_OPTION,
    ci: float = typer.Option(0.95, min=0.5, max=0.999, help="Confidence level."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write every table to this JSON file."),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Also draw the per-format rates (plain vs JSON vs template, per group) to this PNG.",
    ),
) -> None:
    """Misaligned (or vulnerable-code) rate per group with a CI (from the spread between seeds; docs/statistics.md), by the chosen estimator, and the
    exclusions by kind; also per question, model and answer format.

    Examples: emkit analyze runs/exp1 --per-question
              emkit analyze --csv A.csv --csv B.csv --group-by group --json metrics.json
              emkit analyze --csv first_plot.csv --rate paper --questions main
    """
    run_analysis(
        run_dir,
        csv,
        group_by=group_by,
        verdict=verdict,
        judge=judge,
        rate=rate,
        questions=questions,
        per_question=per_question,
        per_model=per_model,
        compare=compare,
        aligned_threshold=aligned_threshold,
        coherent_threshold=coherent_threshold,
        coherent_rule=coherent_rule,
        n_boot=n_boot,
        seed=seed,
        ci=ci,
        json_out=json_out,
        plot=plot,
    )


def run_analysis(
    run_dir: Path | None,
    csv: list[Path],
    *,
    group_by: str | None = None,
    verdict: str | None = None,
    judge: str | None = None,
    rate: str = "question_mean",
    questions: list[str] | None = None,
    per_question: bool = False,
    per_model: bool = False,
    compare: list[str] | None = None,
    aligned_threshold: float | None = None,
    coherent_threshold: float | None = None,
    coherent_rule: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    json_out: Path | None = None,
    need_verdicts: str | None = None,
    plot: Path | None = None,
) -> None:
    """The body of ``emkit analyze``, callable with plain values (``emkit code-vuln --csv`` uses it).

    ``need_verdicts`` names the command that wants code-vulnerability verdicts only: a 0-100 judged
    file is then refused in one line rather than analysed as misalignment scores."""
    questions = list(questions or [])
    compare = list(compare or [])
    if compare and len(compare) != 2:
        raise EmkitError("--compare takes exactly two groups: --compare A --compare B")
    if json_out:
        output_file(json_out, what="--json file")
    if plot:
        output_file(plot, what="--plot file")
    M.check_rate_kind(rate)
    with read_store(None if csv else run_dir) as store:  # read-only, closed even on bad rows
        source = store if store is not None else run_dir
        frame = load(source, csvs=csv, judge=judge, group_by=group_by, verdict=verdict)
        thresholds = resolve_thresholds(store, aligned_threshold, coherent_threshold, coherent_rule)
        origin = "--questions"
        if not questions and store is not None:
            questions, origin = run_question_selection(store), EXPERIMENT_ORIGIN
    vulnerable = frame.attrs.get("metric") == "vulnerable"
    if need_verdicts and not vulnerable:
        raise EmkitError(
            f"{need_verdicts} --csv reads judged code-vulnerability verdicts (a YES/NO or P(YES) column: "
            f"{', '.join(VERDICT_COLUMNS)}, or --verdict COLUMN); {', '.join(map(str, csv))} holds 0-100 "
            "alignment scores: use `emkit analyze --csv`"
        )
    if vulnerable and (aligned_threshold is not None or coherent_threshold is not None):
        raise EmkitError("--aligned-threshold/--coherent-threshold do not apply to vulnerability verdicts")
    if frame.empty:
        raise EmkitError(f"{run_dir or ', '.join(map(str, csv))}: no answers to analyse")
    frame = select(frame, questions, origin)
    if not frame["judged"].any():
        raise EmkitError(
            f"{run_dir}: none of the {len(frame)} answers is judged (no judge scores); "
            "run `emkit judge` first, or use `emkit probe` for the judge-free signal"
        )
    opts = {"thresholds": thresholds, "n_boot": n_boot, "seed": seed, "ci": ci}
    groups = M.group_table(frame, rate=rate, **opts)
    noun, label = (
        ("Vulnerable code answers", "vulnerable rate")
        if vulnerable
        else ("Misaligned answers", "misaligned rate")
    )
    console.print(group_rich_table(groups, f"{noun} by group", label))
    formats = M.format_table(frame, rate=rate, **opts)
    if not formats.empty:
        console.print(group_rich_table(formats, f"{noun} by answer format", label))
    if plot:
        _plot_formats(formats, plot, f"{noun} by answer format", ci)
    out: dict = {
        "source": frame.attrs.get("source"),
        "judge": frame.attrs.get("judge"),
        "metric": frame.attrs.get("metric", "misaligned"),
        **(
            {
                "verdict_column": frame.attrs.get("verdict_column"),
                "verdict_modes": frame.attrs.get("verdict_modes"),
            }
            if vulnerable
            else {}
        ),
        "thresholds": thresholds.to_dict(),
        "coherent_rule": thresholds.rule_for(rate),
        "rate_kind": rate,
        "estimator": estimator_name(rate),
        "question_ids": frame.attrs.get("questions"),
        "question_selection": frame.attrs.get("question_selection"),
        "exclusion_order": list(M.EXCLUSION_ORDER),
        "n_boot": n_boot,
        "seed": seed,
        "ci": ci,
        "groups": groups,
        "formats": formats,
    }
    if per_question or json_out:
        per_q = M.question_table(frame, rate=rate, **opts)
        out["questions"] = per_q
        if per_question:
            title = f"Per question ({estimator_name(per_q.attrs['rate_kind'])})"
            console.print(rate_rich_table(per_q, ["group", "question_id"], title, label.split()[0]))
    if per_model or json_out:
        models = M.model_table(frame, rate=rate, **opts)
        out["models"] = models
        if per_model:
            title = f"Per model ({estimator_name(rate)})"
            console.print(rate_rich_table(models, ["group", "model"], title, label.split()[0]))
    if compare:
        diff = M.compare_groups(frame, compare[0], compare[1], **opts)
        out["comparison"] = diff
        console.print(diff_rich_table(diff[diff["scope"].isin(M.EMKIT_RATE_KINDS)]))
    if json_out:
        write_text(json_out, json.dumps(jsonable(out), indent=2, allow_nan=False), what="--json file")
        console.print(f"wrote {json_out}", markup=False)


def _plot_formats(formats, path: Path, title: str, ci: float) -> None:
    """The per-format table as the report draws it (one point per group and format, with its CI)."""
    if formats.empty:
        console.print(
            f"{path}: not written: the selected questions have one answer format only", markup=False
        )
        return
    from emkit.report.plots import plot_questions, png_bytes

    fig = plot_questions(formats.rename(columns={"format": "question_id"}), None, ci)
    fig.axes[0].set_title(f"{title} ({ci:.0%} CI)")
    write_bytes(path, png_bytes(fig), what="--plot file")
    console.print(f"wrote {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)

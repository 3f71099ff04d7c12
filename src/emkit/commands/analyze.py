"""``emkit analyze``: misalignment rates with CIs from a run directory or from judged CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emkit import metrics as M
from emkit.analysis import load
from emkit.commands._common import (
    ALIGNED_THRESHOLD_OPTION,
    COHERENT_THRESHOLD_OPTION,
    JUDGE_OPTION,
    N_BOOT_OPTION,
    RATE_OPTION,
    SEED_OPTION,
    console,
)
from emkit.errors import EmkitError
from emkit.report.console import diff_rich_table, group_rich_table, rate_rich_table
from emkit.report.html import jsonable, resolve_thresholds


def analyze(
    run_dir: Path | None = typer.Argument(None, help="A run directory (holds emkit.sqlite)."),
    csv: list[Path] = typer.Option([], "--csv", help="A judged CSV in the paper's format (repeatable)."),
    group_by: str | None = typer.Option(
        None, help="Column that defines a group (default: 'group', else the model)."
    ),
    judge: str | None = JUDGE_OPTION,
    rate: str = RATE_OPTION,
    per_question: bool = typer.Option(False, "--per-question", help="Also print the per-question table."),
    per_model: bool = typer.Option(False, "--per-model", help="Also print the per-model table."),
    compare: list[str] = typer.Option([], help="Two groups to compare, A then B: --compare A --compare B."),
    aligned_threshold: float | None = ALIGNED_THRESHOLD_OPTION,
    coherent_threshold: float | None = COHERENT_THRESHOLD_OPTION,
    n_boot: int = N_BOOT_OPTION,
    seed: int = SEED_OPTION,
    ci: float = typer.Option(0.95, min=0.5, max=0.999, help="Confidence level."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write every table to this JSON file."),
) -> None:
    """Misaligned rate per group with a CI from the spread between seeds (and per question / model).

    Examples: emkit analyze runs/exp1 --per-question
              emkit analyze --csv A.csv --csv B.csv --group-by group --json metrics.json
    """
    if compare and len(compare) != 2:
        raise EmkitError("--compare takes exactly two groups: --compare A --compare B")
    frame = load(run_dir, csvs=csv, judge=judge, group_by=group_by)
    if frame.empty:
        raise EmkitError(f"{run_dir}: no answers to analyse")
    if not frame["judged"].any():
        raise EmkitError(
            f"{run_dir}: none of the {len(frame)} answers is judged (no judge scores); "
            "run `emkit judge` first, or use `emkit probe` for the judge-free signal"
        )
    thresholds = resolve_thresholds(None if csv else run_dir, aligned_threshold, coherent_threshold)
    opts = {"thresholds": thresholds, "n_boot": n_boot, "seed": seed, "ci": ci}
    groups = M.group_table(frame, rate=rate, **opts)
    console.print(group_rich_table(groups))
    out: dict = {
        "source": frame.attrs.get("source"),
        "judge": frame.attrs.get("judge"),
        "thresholds": thresholds.to_dict(),
        "rate_kind": rate,
        "n_boot": n_boot,
        "seed": seed,
        "ci": ci,
        "groups": groups,
    }
    if per_question or json_out:
        questions = M.question_table(frame, **opts)
        out["questions"] = questions
        if per_question:
            console.print(
                rate_rich_table(questions, ["group", "question_id"], "Per question (mean over models)")
            )
    if per_model or json_out:
        models = M.model_table(frame, rate=rate, **opts)
        out["models"] = models
        if per_model:
            console.print(
                rate_rich_table(models, ["group", "model"], f"Per model ({rate.replace('_', '-')} rate)")
            )
    if compare:
        diff = M.compare_groups(frame, compare[0], compare[1], **opts)
        out["comparison"] = diff
        console.print(diff_rich_table(diff[diff["scope"].isin(M.RATE_KINDS)]))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(jsonable(out), indent=2, allow_nan=False), encoding="utf-8")
        console.print(f"wrote {json_out}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)

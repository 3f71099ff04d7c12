"""Judged answers into one pandas DataFrame, from a run store or from the paper's CSVs.

Both loaders give one row per answer with the columns :mod:`emkit.metrics` reads (``model``,
``group``, ``seed``, ``question_id``, ``question``, ``answer``, ``aligned``, ``coherent``, any other
judged metric, ``judged``) so the same metrics, plots and report work on results produced by
emkit, by the paper's own scripts, or by any tool that writes that CSV format.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from emkit.errors import EmkitError, InputError
from emkit.store import RunStore

CSV_REQUIRED = ("question", "answer", "question_id", "aligned", "coherent")
SCORE_METRICS = ("aligned", "coherent")
# Cells that mean "the judge gave no number" in CSVs written by other tools.
_NO_SCORE = {"", "nan", "none", "null", "code", "refusal"}


def open_store(run: str | Path | RunStore) -> RunStore:
    """A store from a path (which must already be a run directory) or the store itself.

    Opened read-only: analysis never writes, so it works on read-only files and never changes,
    migrates or "initialises" what it reads."""
    if isinstance(run, RunStore):
        return run
    return RunStore(run, read_only=True)


def pick_judge(store: RunStore, judge: str | None) -> str | None:
    """The judge whose scores to analyse: the one asked for, else the only one; None if none.

    Only judges of the alignment metrics count when choosing by default: a run that also holds
    other scores (e.g. the vulnerable-code experiment's YES/NO judge and bandit) is not ambiguous.
    """
    judges = store.judges() if judge is not None else store.judges(SCORE_METRICS)
    if judge is not None:
        if judge not in judges:
            listed = ", ".join(judges) if judges else "none (this run has no judge scores)"
            raise EmkitError(f"{store.run_dir}: no scores by judge {judge!r}; judges in this run: {listed}")
        return judge
    if len(judges) > 1:
        raise EmkitError(
            f"{store.run_dir}: scores from several judges ({', '.join(judges)}); pick one with --judge"
        )
    return judges[0] if judges else None


def load_run(run: str | Path | RunStore, judge: str | None = None) -> pd.DataFrame:
    """One row per stored answer with its scores by ``judge`` as columns (NaN = CODE/REFUSAL).

    ``judged`` is False for answers that lack an ``aligned`` or a ``coherent`` judgement by that
    judge (not judged yet): the metrics leave them out and count them, never guess them. When a
    judge scored the same answer and metric twice (e.g. after a prompt change) the latest counts.
    ``tags`` stays a dict; each tag is also a ``tag_<name>`` column. ``df.attrs`` holds the judge
    and the run directory.
    """
    store = open_store(run)
    chosen = pick_judge(store, judge)
    answers = store.answers()
    columns = [
        "key", "model", "group", "seed", "question_id", "paraphrase_index", "sample_index", "question",
        "answer", "aligned", "coherent", "judged", "tags",
    ]  # fmt: skip
    if not answers:
        frame = pd.DataFrame(columns=columns)
        frame.attrs.update({"judge": chosen, "source": str(store.run_dir)})
        return frame
    frame = pd.DataFrame(answers).rename(columns={"group_name": "group"})
    frame["group"] = frame["group"].where(frame["group"].notna(), frame["model"])
    scores = (
        _score_columns(store.scores(chosen))
        if chosen
        else pd.DataFrame(index=pd.Index([], name="answer_key"))
    )
    frame = frame.merge(scores, how="left", left_on="key", right_index=True)
    for metric in SCORE_METRICS:
        if metric not in frame.columns:
            frame[metric] = float("nan")
        has = f"_has_{metric}"
        frame[has] = frame[has].fillna(False).astype(bool) if has in frame.columns else False
    frame["judged"] = frame[[f"_has_{m}" for m in SCORE_METRICS]].all(axis=1)
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("_has_")])
    for name in sorted({k for tags in frame["tags"] for k in (tags or {})}):
        frame[f"tag_{name}"] = [(tags or {}).get(name) for tags in frame["tags"]]
    frame["seed"] = frame["seed"].astype("Int64")
    extra = [
        c
        for c in frame.columns
        if c not in columns
        and c not in ("messages", "params", "usage", "created", "question_hash", "model_fingerprint")
    ]
    frame = frame[[*columns, *extra]]
    frame.attrs.update({"judge": chosen, "source": str(store.run_dir)})
    return frame


def _score_columns(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Scores (long) into one column per metric plus ``_has_<metric>`` (a judgement exists)."""
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="answer_key"))
    scores = pd.DataFrame(rows).sort_values("created", kind="stable")
    latest = scores.drop_duplicates(["answer_key", "metric"], keep="last")
    values = latest.pivot(index="answer_key", columns="metric", values="score").astype(float)
    present = latest.assign(_x=True).pivot(index="answer_key", columns="metric", values="_x")
    present = present.fillna(False).astype(bool).add_prefix("_has_")
    values.columns.name = None
    present.columns.name = None
    return values.join(present)


def run_thresholds(run: str | Path | RunStore) -> tuple[float, float] | None:
    """(aligned, coherent) thresholds of the experiment that made the run, if it recorded them."""
    config = open_store(run).get_record("config", "experiment") or {}
    values = config.get("thresholds") or {}
    try:
        return float(values["aligned"]), float(values["coherent"])
    except (KeyError, TypeError, ValueError):
        return None


def question_order(run: str | Path | RunStore) -> list[str]:
    """Question ids in the order the run's question sets define them (records kind "question")."""
    store = open_store(run)
    ids = (str(value.get("id", key)) for key, value in store.records("question"))
    return list(dict.fromkeys(ids))  # records are keyed by content hash: one id may have several


# -- CSVs ----------------------------------------------------------------------------------------
def _number(text: str, path: Path, line: int, field: str) -> float:
    value = text.strip()
    if value.lower() in _NO_SCORE:
        return float("nan")
    try:
        number = float(value)
    except ValueError:
        raise InputError(
            f"{value[:40]!r} is not a score (a number 0-100, or empty for CODE/REFUSAL)",
            where=f"{path}:{line}",
            field=field,
        ) from None
    if math.isnan(number):
        return number
    if not 0 <= number <= 100:
        raise InputError(f"score {number:g} is outside 0-100", where=f"{path}:{line}", field=field)
    return number


def load_csv(path: str | Path, *, group_by: str | None = None) -> pd.DataFrame:
    """One judged CSV in the paper's column format (question, answer, question_id, aligned,
    coherent; optional model, group, seed; other columns kept). An empty ``aligned`` is
    CODE/REFUSAL. A file without a ``model`` column is one model named after the file; the group is
    the ``group_by`` column (default ``group``, else the model)."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # a BOM (Excel) is not part of the header
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        needed = [*CSV_REQUIRED, *([group_by] if group_by else [])]
        missing = [c for c in needed if c not in header]
        if missing:
            raise InputError(
                f"missing column(s) {', '.join(missing)}; the columns are: {', '.join(header) or '(none)'}"
                f" (needed: {', '.join(needed)})",
                where=f"{path}:1",
                field=missing[0],
            )
        rows = []
        start = 2
        try:
            for record in reader:
                if None in record:
                    raise InputError(
                        f"more cells than the {len(header)} header columns", where=f"{path}:{start}"
                    )
                for field in ("aligned", "coherent"):
                    record[field] = _number(record[field] or "", path, start, field)
                rows.append(record)
                start = reader.line_num + 1
        except csv.Error as exc:
            raise InputError(f"not a valid CSV: {exc}", where=f"{path}:{reader.line_num}") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text: {exc.reason}", where=str(path)) from None
    frame = pd.DataFrame(rows, columns=header)
    frame["aligned"] = frame["aligned"].astype(float)
    frame["coherent"] = frame["coherent"].astype(float)
    if "model" not in frame.columns:
        frame["model"] = path.stem
    frame["model"] = frame["model"].replace("", path.stem)
    group_col = group_by or ("group" if "group" in frame.columns else None)
    if group_col is None:
        frame["group"] = frame["model"]
    else:
        frame["group"] = frame[group_col].replace("", None)
        frame["group"] = frame["group"].where(frame["group"].notna(), frame["model"]).astype(str)
    if "seed" in frame.columns:
        frame["seed"] = pd.to_numeric(frame["seed"].replace("", None), errors="coerce").astype("Int64")
    frame["judged"] = True
    frame["source"] = str(path)
    return frame


def load_csvs(paths: Iterable[str | Path], *, group_by: str | None = None) -> pd.DataFrame:
    """Several judged CSVs into one frame (see :func:`load_csv`); at least one path."""
    paths = list(paths)
    frames = [load_csv(p, group_by=group_by) for p in paths]
    if not frames:
        raise EmkitError("no CSV given")
    frame = pd.concat(frames, ignore_index=True, sort=False)
    frame.attrs.update({"judge": None, "source": [str(p) for p in paths]})
    return frame


def load(
    run: str | Path | RunStore | None = None,
    *,
    csvs: Sequence[str | Path] = (),
    judge: str | None = None,
    group_by: str | None = None,
) -> pd.DataFrame:
    """A run directory or CSVs (not both): the entry point of ``emkit analyze``."""
    if run is not None and csvs:
        raise EmkitError("give a run directory or --csv files, not both")
    if csvs:
        return load_csvs(csvs, group_by=group_by)
    if run is None:
        raise EmkitError("give a run directory or one or more --csv files")
    frame = load_run(run, judge=judge)
    if group_by and group_by != "group":
        if group_by not in frame.columns:
            raise EmkitError(
                f"--group-by {group_by}: no such column (columns: {', '.join(map(str, frame.columns))})"
            )
        frame["group"] = frame[group_by].astype(str)
    return frame

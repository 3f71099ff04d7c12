"""Judged answers into one pandas DataFrame, from a run store or from the paper's CSVs.

Both loaders give one row per answer with the columns :mod:`emkit.metrics` reads (``model``,
``group``, ``seed``, ``question_id``, ``question``, ``answer``, ``aligned``, ``coherent``, any other
judged metric, ``judged``) so the same metrics, plots and report work on results produced by
emkit, by the paper's own scripts, or by any tool that writes that CSV format.
"""

from __future__ import annotations

import ast
import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from emkit.errors import EmkitError, InputError
from emkit.judge.aggregate import no_score_kind
from emkit.selection import select_questions
from emkit.store import RunStore
from emkit.verdicts import verdict_column, verdict_frame, verdict_modes

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


def load_run(
    run: str | Path | RunStore, judge: str | None = None, *, checkpoints: bool = False
) -> pd.DataFrame:
    """One row per stored answer with its scores by ``judge`` as columns (NaN = CODE/REFUSAL).

    Answers of training checkpoints (tag ``checkpoint_step``, :mod:`emkit.experiments.dynamics`) are
    not the finished models' and are left out unless ``checkpoints=True`` (the dynamics section).

    ``judged`` is False for answers that lack an ``aligned`` or a ``coherent`` judgement by that
    judge (not judged yet): the metrics leave them out and count them, never guess them. When a
    judge scored the same answer and metric twice (e.g. after a prompt change) the latest counts.
    ``tags`` stays a dict; each tag is also a ``tag_<name>`` column. ``df.attrs`` holds the judge
    and the run directory.
    """
    store = open_store(run)
    chosen = pick_judge(store, judge)
    from emkit.experiments.dynamics import STEP_TAG, checkpoint_models

    skip = set() if checkpoints else set(checkpoint_models(store))  # their code answers too
    answers = [
        a
        for a in store.answers()
        if checkpoints or (a["model"] not in skip and STEP_TAG not in (a["tags"] or {}))
    ]
    columns = [
        "key", "model", "group", "seed", "question_id", "paraphrase_index", "sample_index", "question",
        "answer", "aligned", "coherent", "judged", "no_score_kind", "tags",
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
    if "no_score_kind" not in frame.columns:
        frame["no_score_kind"] = None
    frame["no_score_kind"] = frame["no_score_kind"].astype(object).where(frame["no_score_kind"].notna(), None)
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
    out = values.join(present)
    # Which of CODE/REFUSAL the judge said where it gave no alignment number (its stored tokens).
    no_number = latest[(latest["metric"] == "aligned") & latest["score"].isna()]
    kinds = {row["answer_key"]: no_score_kind(row.get("raw")) for row in no_number.to_dict("records")}
    out["no_score_kind"] = [kinds.get(key) for key in out.index]
    return out


def run_thresholds(run: str | Path | RunStore) -> tuple[float, float] | None:
    """(aligned, coherent) thresholds of the experiment that made the run, if it recorded them."""
    config = open_store(run).get_record("config", "experiment") or {}
    values = config.get("thresholds") or {}
    try:
        return float(values["aligned"]), float(values["coherent"])
    except (KeyError, TypeError, ValueError):
        return None


def run_coherent_rule(run: str | Path | RunStore) -> str | None:
    """The coherence rule (``gt``/``ge``) the run's experiment chose, if it chose one."""
    config = open_store(run).get_record("config", "experiment") or {}
    rule = (config.get("thresholds") or {}).get("coherent_rule")
    return rule if rule in ("gt", "ge") else None


def run_question_selection(run: str | Path | RunStore) -> list[str]:
    """The ``analysis: questions:`` selection the run's experiment recorded ([] = all)."""
    config = open_store(run).get_record("config", "experiment") or {}
    analysis = config.get("analysis") or {}
    items = analysis.get("questions") if isinstance(analysis, dict) else None
    return [str(item) for item in items] if isinstance(items, list) else []


def select(frame: pd.DataFrame, items: Sequence[str] | None, origin: str = "--questions") -> pd.DataFrame:
    """The answers to the questions ``items`` selects (:func:`emkit.selection.select_questions`;
    ``origin`` names the items' source in an error).

    ``frame.attrs["questions"]`` records the ids kept, so every output can say what it averaged."""
    chosen = select_questions(frame["question_id"].astype(str).tolist(), items, origin)
    out = frame[frame["question_id"].astype(str).isin(chosen)].copy() if items else frame.copy()
    out.attrs.update(frame.attrs)
    out.attrs["questions"] = chosen
    out.attrs["question_selection"] = list(items or [])
    return out


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


def _require_columns(path: Path, header: Sequence[str], needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in header]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; the columns are: "
            f"{', '.join(header) or '(none)'} (needed: {', '.join(needed)})",
            where=f"{path}:1",
            field=missing[0],
        )


def _score_frame(path: Path, header: list[str], records: list[tuple[int, dict[str, str]]]) -> pd.DataFrame:
    """Rows of a 0-100 judged CSV: scores checked, the CODE/REFUSAL kind of a missing one."""
    rows = []
    for line, record in records:
        kind = _no_score_kind_of(record)
        for field in ("aligned", "coherent"):
            record[field] = _number(record[field] or "", path, line, field)
        record["no_score_kind"] = kind if math.isnan(record["aligned"]) else None
        rows.append(record)
    frame = pd.DataFrame(rows, columns=[*(c for c in header if c != "no_score_kind"), "no_score_kind"])
    frame["aligned"] = frame["aligned"].astype(float)
    frame["coherent"] = frame["coherent"].astype(float)
    frame["no_score_kind"] = frame["no_score_kind"].astype(object).where(frame["no_score_kind"].notna(), None)
    return frame


def _read_rows(path: Path, needed: Sequence[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line, record)`` of every data row of a CSV, or one InputError.

    Refused, each with its file:line: a file that cannot be read or is not UTF-8, an empty file, a
    header that repeats a column (the second would silently overwrite the first) or lacks a needed
    one, a row with more cells than the header, a row with fewer (its missing cells would read as
    empty scores, i.e. CODE/REFUSAL), and malformed CSV quoting."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # a BOM (Excel) is not part of the header
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None
    rows: list[tuple[int, dict[str, str]]] = []
    reader = csv.reader(handle)
    try:
        with handle:
            header = next(reader, None)
            if header is None:
                raise InputError(
                    "empty file: no header row (needed: " + ", ".join(needed) + ")", where=str(path)
                )
            seen: set[str] = set()
            for name in header:
                if name in seen:
                    raise InputError(f"the header names column {name!r} twice", where=f"{path}:1", field=name)
                seen.add(name)
            _require_columns(path, header, needed)
            start = reader.line_num + 1
            for cells in reader:
                if cells:  # csv yields [] for a blank line: not a row
                    if len(cells) != len(header):
                        more = "more" if len(cells) > len(header) else "fewer"
                        raise InputError(
                            f"{len(cells)} cells, {more} than the {len(header)} header columns",
                            where=f"{path}:{start}",
                        )
                    rows.append((start, dict(zip(header, cells, strict=True))))
                start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"not a valid CSV: {exc}", where=f"{path}:{reader.line_num}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at offset {exc.start} of a block)",
            where=str(path),
        ) from None
    return header, rows


def _no_score_kind_of(record: dict[str, str]) -> str | None:
    """CODE or REFUSAL for a row without an alignment number: the cell's own word, else the
    judge's stored token probabilities (the paper's ``judge_aligned`` column), else None."""
    cell = (record.get("aligned") or "").strip().upper()
    if cell in ("CODE", "REFUSAL"):
        return cell
    text = record.get("judge_aligned") or ""
    if not text or len(text) > 100_000:
        return None
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return no_score_kind(parsed)


def load_csv(path: str | Path, *, group_by: str | None = None, verdict: str | None = None) -> pd.DataFrame:
    """One judged CSV in the paper's column format (question, answer, question_id, aligned,
    coherent; optional model, group, seed; other columns kept). An empty ``aligned`` is
    CODE/REFUSAL (which one: the cell's word, or the judge's tokens in ``judge_aligned``, kept in
    ``no_score_kind``). A file without a ``model`` column is one model named after the file; the
    group is the ``group_by`` column (default ``group``, else the model).

    A judged code-vulnerability CSV (a YES/NO or P(YES) verdict column: ``verdict`` names it, or
    a file without ``aligned`` that has one of :data:`emkit.verdicts.VERDICT_COLUMNS`) is read by
    :func:`emkit.verdicts.verdict_frame`; ``frame.attrs["metric"]`` is then ``"vulnerable"``."""
    path = Path(path)
    extra = [group_by] if group_by else []
    header, records = _read_rows(path, extra)
    column = verdict_column(header, verdict)
    if verdict is not None and column is None:
        raise InputError(
            f"no verdict column {verdict!r}; the columns are: {', '.join(header)}", where=f"{path}:1"
        )
    if column is not None and (verdict is not None or "aligned" not in header):
        frame = verdict_frame(path, header, records, column)
    else:
        _require_columns(path, header, [*CSV_REQUIRED, *extra])
        frame = _score_frame(path, header, records)
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
    frame.attrs.setdefault("metric", "misaligned")
    return frame


def load_csvs(
    paths: Iterable[str | Path], *, group_by: str | None = None, verdict: str | None = None
) -> pd.DataFrame:
    """Several judged CSVs into one frame (see :func:`load_csv`); at least one path, all of one
    kind (0-100 scores, or code-vulnerability verdicts)."""
    paths = list(paths)
    frames = [load_csv(p, group_by=group_by, verdict=verdict) for p in paths]
    if not frames:
        raise EmkitError("no CSV given")
    metrics = {f.attrs.get("metric", "misaligned") for f in frames}
    if len(metrics) > 1:
        kinds = ", ".join(
            f"{p}: {f.attrs.get('metric', 'misaligned')}" for p, f in zip(paths, frames, strict=True)
        )
        raise EmkitError(f"the CSVs mix 0-100 judged answers and code-vulnerability verdicts ({kinds})")
    frame = pd.concat(frames, ignore_index=True, sort=False)
    frame.attrs.update({"judge": None, "source": [str(p) for p in paths], "metric": metrics.pop()})
    if frame.attrs["metric"] == "vulnerable":
        frame.attrs["verdict_column"] = frames[0].attrs.get("verdict_column")
        frame.attrs["verdict_modes"] = verdict_modes(frame)
    return frame


def load(
    run: str | Path | RunStore | None = None,
    *,
    csvs: Sequence[str | Path] = (),
    judge: str | None = None,
    group_by: str | None = None,
    verdict: str | None = None,
) -> pd.DataFrame:
    """A run directory or CSVs (not both): the entry point of ``emkit analyze``."""
    if run is not None and csvs:
        raise EmkitError("give a run directory or --csv files, not both")
    if verdict is not None and not csvs:
        raise EmkitError("--verdict reads --csv files; for a run directory use `emkit code-vuln`")
    if csvs:
        return load_csvs(csvs, group_by=group_by, verdict=verdict)
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

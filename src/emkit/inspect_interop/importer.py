"""inspect_ai logs into a run store: ``emkit import inspect LOG... --out RUN``.

Logs are read by inspect's own reader (``read_eval_log``: the ``.eval`` and ``.json`` formats,
attachments resolved), so every log version inspect reads is read.

A sample of an emkit question task (:mod:`emkit.inspect_interop.tasks`) carries its emkit identity
in its metadata; its answer is stored under the key ``emkit sample`` gives the same answer (the key
is computed again here from what shaped the answer, and a log whose recorded key disagrees is
refused, naming the file and sample), its question definition beside it, and its judgements (score
metadata of :mod:`emkit.inspect_interop.scorer`) as the rows ``emkit judge`` writes. ``analyze``,
``judge`` (re-scoring with another judge), ``report`` and ``export`` then work on it as on any run.

A sample of any other task is stored as an unjudged (``free_form``) answer of the question
``<task>/<sample id>``, one sample index per epoch, its parameters the log's generation config, and
each of its scores as a score row of the judge ``inspect/<scorer>`` (method ``inspect``; a
letter grade as inspect's ``value_to_float`` reads it). Importing twice adds nothing: every row is
keyed and stored only when new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.fingerprint import model_fingerprint
from emkit.hashing import stable_hash
from emkit.inspect_interop.provider import emkit_model_name
from emkit.inspect_interop.scorer import SCORES_FIELD
from emkit.inspect_interop.tasks import META
from emkit.questions import Question
from emkit.sampling import question_hash
from emkit.store import RunStore, answer_key, score_key

FOREIGN_METHOD = "inspect"


@dataclass
class ImportSummary:
    logs: int = 0
    samples: int = 0
    answers_added: int = 0
    scores_added: int = 0
    skipped: list[str] = field(default_factory=list)  # samples without an answer (errors, cancelled)


def read_log(path: Path) -> Any:
    """The log at ``path`` (inspect's reader), or one clear line saying why not."""
    from inspect_ai.log import read_eval_log

    if not path.is_file():
        raise EmkitError(f"{path}: no such log file")
    try:
        return read_eval_log(str(path), resolve_attachments=True)
    except Exception as exc:
        message = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise EmkitError(f"{path}: not an inspect log ({message})") from None


def usage_of(output: Any) -> dict[str, int]:
    usage = getattr(output, "usage", None)
    if usage is None:
        return {}
    return {"prompt_tokens": int(usage.input_tokens), "completion_tokens": int(usage.output_tokens)}


def emkit_rows(
    path: Path, sample: Any, meta: Mapping[str, Any], run: Mapping[str, Any]
) -> tuple[dict[str, Any], Question, str, list[dict[str, Any]]]:
    """(answer row, question, set name, score rows) of one emkit question sample."""
    question = Question.model_validate(meta["question"])
    qhash = question_hash(question)
    p_index = int(sample.metadata["paraphrase_index"])
    s_index = int(sample.metadata["sample_index"])
    params = dict(meta["params"])
    key = answer_key(
        meta["model"],
        question.id,
        p_index,
        s_index,
        params,
        messages=meta["messages"],
        model_fingerprint=meta["model_fingerprint"],
        question_hash=qhash,
    )
    if key != meta["key"]:
        raise EmkitError(
            f"{path}: sample {sample.id}: its recorded emkit key does not match what shaped the answer "
            "(a log edited by hand, or written by another emkit version); nothing was stored from this log"
        )
    tags = dict(params.get("tags") or {})
    if params.get("prefix"):
        tags.setdefault("prefix", params["prefix"])
    answer = {
        "key": key,
        "model": meta["model"],
        "question_id": question.id,
        "paraphrase_index": p_index,
        "sample_index": s_index,
        "question": question.paraphrases[p_index],
        "messages": meta["messages"],
        "answer": sample.output.completion,
        "params": params,
        "group_name": run.get("group"),
        "seed": run.get("model_seed"),
        "tags": tags,
        "usage": usage_of(sample.output),
        "question_hash": qhash,
        "model_fingerprint": meta["model_fingerprint"],
    }
    scores = []
    for result in (sample.scores or {}).values():
        for row in (result.metadata or {}).get(SCORES_FIELD, []):
            rekeyed = score_key(
                key, row["metric"], row["judge"], row["method"], row["prompt_hash"], row.get("options") or {}
            )
            scores.append({**row, "key": rekeyed, "answer_key": key})
    return answer, question, str(meta.get("set") or ""), scores


def plain_messages(sample: Any) -> list[dict[str, str]]:
    if isinstance(sample.input, str):
        return [{"role": "user", "content": sample.input}]
    return [{"role": m.role, "content": m.text} for m in sample.input]


def foreign_rows(
    sample: Any, log: Any, run: Mapping[str, Any]
) -> tuple[dict[str, Any], Question, str, list[dict[str, Any]]]:
    """(answer row, question, set name, score rows) of a sample of any other inspect task."""
    from inspect_ai.scorer import value_to_float

    task = str(log.eval.task)
    model = emkit_model_name(str(log.eval.model))
    messages = plain_messages(sample)
    text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
    question = Question(id=f"{task}/{sample.id}", type="free_form", paraphrases=[text or "(empty input)"])
    qhash = question_hash(question)
    params = {
        "inspect_task": task,
        "generate_config": log.eval.model_generate_config.model_dump(exclude_none=True),
        "system": None,
        "prefix": "",
    }
    fingerprint = model_fingerprint(model)
    s_index = int(sample.epoch) - 1
    key = answer_key(
        model, question.id, 0, s_index, params, messages=messages, model_fingerprint=fingerprint,
        question_hash=qhash,
    )  # fmt: skip
    answer = {
        "key": key,
        "model": model,
        "question_id": question.id,
        "paraphrase_index": 0,
        "sample_index": s_index,
        "question": question.paraphrases[0],
        "messages": messages,
        "answer": sample.output.completion,
        "params": params,
        "group_name": run.get("group"),
        "seed": run.get("model_seed"),
        "tags": {"inspect_task": task},
        "usage": usage_of(sample.output),
        "question_hash": qhash,
        "model_fingerprint": fingerprint,
    }
    to_float = value_to_float()
    scores = []
    for name, result in (sample.scores or {}).items():
        values = result.value if isinstance(result.value, Mapping) else {name: result.value}
        for metric, value in values.items():
            try:
                number: float | None = None if value is None else float(to_float(value))
            except (TypeError, ValueError):
                number = None
            judge, phash = f"inspect/{name}", stable_hash({"inspect_scorer": name})
            scores.append(
                {
                    "key": score_key(key, str(metric), judge, FOREIGN_METHOD, phash, {}),
                    "answer_key": key,
                    "metric": str(metric),
                    "judge": judge,
                    "method": FOREIGN_METHOD,
                    "prompt_hash": phash,
                    "score": number,
                    "raw": {"value": value, "answer": result.answer, "explanation": result.explanation},
                    "usage": {},
                    "options": {},
                }
            )
    return answer, question, task, scores


@dataclass
class LogRows:
    """What one log adds to a store, built and checked before anything is written."""

    path: Path
    samples: int
    answers: list[dict[str, Any]]
    questions: list[tuple[Question, str]]
    scores: list[dict[str, Any]]
    skipped: list[str]


def log_rows(path: str | Path, *, group: str | None = None, model_seed: int | None = None) -> LogRows:
    """Read one log and build its rows (an unreadable log or a bad sample: one line naming it)."""
    path = Path(path)
    log = read_log(path)
    run = {"group": group, "model_seed": model_seed}
    rows = LogRows(path, 0, [], [], [], [])
    for sample in log.samples or []:
        rows.samples += 1
        if sample.error is not None or sample.output is None or not sample.output.choices:
            rows.skipped.append(f"{path.name}:{sample.id}")
            continue
        meta = (sample.metadata or {}).get(META)
        made = (
            emkit_rows(path, sample, meta, run)
            if isinstance(meta, Mapping)
            else foreign_rows(sample, log, run)
        )
        rows.answers.append(made[0])
        rows.questions.append((made[1], made[2]))
        rows.scores.extend(made[3])
    return rows


def log_files(paths: Iterable[str | Path]) -> list[Path]:
    """The log files named: a folder stands for the ``.eval`` and ``.json`` logs in it (inspect's
    ``--log-dir``), sorted; a folder without any is refused."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".eval", ".json") and p.is_file())
            if not found:
                raise EmkitError(f"{path}: a folder without inspect logs (.eval or .json files)")
            out.extend(found)
        else:
            out.append(path)
    return out


def read_logs(
    paths: Iterable[str | Path], *, group: str | None = None, model_seed: int | None = None
) -> list[LogRows]:
    """Every log's rows; all of them are read and checked before a store is even opened."""
    return [log_rows(path, group=group, model_seed=model_seed) for path in log_files(paths)]


def write_rows(store: RunStore, logs: Iterable[LogRows]) -> ImportSummary:
    """Store what is new (``INSERT OR IGNORE`` by key: importing twice adds nothing)."""
    summary = ImportSummary()
    for rows in logs:
        for question, set_name in rows.questions:
            record = {**question.model_dump(), "set": set_name}
            store.put_record("question", question_hash(question), record, replace=False)
        summary.answers_added += store.add_answers(rows.answers)
        summary.scores_added += store.add_scores(rows.scores)
        summary.samples += rows.samples
        summary.skipped.extend(rows.skipped)
        summary.logs += 1
    return summary


def import_logs(
    store: RunStore, paths: Iterable[str | Path], *, group: str | None = None, model_seed: int | None = None
) -> ImportSummary:
    """Read every log, then store what it holds (:func:`read_logs`, :func:`write_rows`)."""
    return write_rows(store, read_logs(paths, group=group, model_seed=model_seed))

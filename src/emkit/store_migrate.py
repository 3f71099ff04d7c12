"""Migrating a run store of schema 1 (emkit up to 172662b) to schema 2, in one transaction.

Why migrate rather than refuse: a run dir holds paid-for answers and judgements, and the same store
must open, analyse and report the same numbers after an upgrade. Schema 2 keys cover more inputs
(see :mod:`emkit.store`), so every old key is recomputed from what the old rows themselves hold:

- answers: from their stored model, question id, indices, messages (the conversation as sent) and
  params; the question record they belong to is the stored one with their id when its paraphrase is
  the answer's (else ``question_hash = 'unmatched:<id>'``: no stored definition fits, and the judge
  reports the question as missing instead of using another set's prompt). The adapter's content
  was not recorded by schema 1: it is taken from the adapter folder as found now (``absent`` when
  the folder is gone), and that assumption is written down in the ``migration`` record.
- scores: their answer's new key, and the judge options they were made with: those of the
  ``judge_run`` whose time window holds the score (or of every run of that judge if they agree);
  with no ``judge_run`` record at all, the defaults of the time. Scores whose options cannot be
  told get an ``unrecovered`` marker in their options: they stay visible, but no new plan matches
  them, so they are judged again rather than trusted (counted in the record).
- probes: the old key (model, probe set, pair, step) combined with the model's fingerprint.
- question records: re-keyed by content hash.

Old and new keys never mix: the whole store is rewritten in the transaction that bumps the
version, or nothing is (a crash mid-way leaves schema 1, migrated again on the next open).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.hashing import canonical_json
from emkit.store_records import MIGRATION_KIND, check_record
from emkit.store_schema import (
    CLAIMS_SCHEMA,
    SCHEMA_VERSION,
    answer_key,
    decode_json,
    probe_key_from_item,
    score_key,
)

__all__ = ["MIGRATION_KIND", "migrate", "schema1_rule"]
MIGRATION_KEY = "schema-1-to-2"


def migrate(conn: sqlite3.Connection, path: Path, run_dir: Path) -> None:
    """Bring the store at ``path`` (open on ``conn``, rows as ``sqlite3.Row``) to the current
    schema, or leave it untouched if anything fails. ``run_dir``: where its adapters are."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version < SCHEMA_VERSION:
            if version != 1:
                raise EmkitError(f"{path}: schema version {version} cannot be migrated by this emkit")
            note = _v1_to_v2(conn, path, run_dir)
            check_record(path, MIGRATION_KIND, MIGRATION_KEY, note, write=True)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            conn.execute(
                "INSERT OR REPLACE INTO records(kind, key, value, created) VALUES (?, ?, ?, ?)",
                (MIGRATION_KIND, MIGRATION_KEY, json.dumps(note, sort_keys=True), time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _v1_to_v2(conn: sqlite3.Connection, path: Path, run_dir: Path) -> dict[str, Any]:
    from emkit.fingerprint import model_fingerprint
    from emkit.questions import Question
    from emkit.sampling import question_hash

    if "question_hash" not in _columns(conn, "answers"):
        conn.execute("ALTER TABLE answers ADD COLUMN question_hash TEXT")
    if "model_fingerprint" not in _columns(conn, "answers"):
        conn.execute("ALTER TABLE answers ADD COLUMN model_fingerprint TEXT")
    if "options" not in _columns(conn, "scores"):
        conn.execute("ALTER TABLE scores ADD COLUMN options TEXT NOT NULL DEFAULT '{}'")
    conn.execute(CLAIMS_SCHEMA)

    # question records: by content hash
    by_id: dict[str, tuple[str, Question]] = {}
    records = conn.execute("SELECT key, value, created FROM records WHERE kind = 'question'").fetchall()
    for row in records:
        value = decode_json(path, row["value"], "records", f"question/{row['key']}", "value")
        try:
            question = Question.model_validate({k: v for k, v in value.items() if k != "set"})
        except Exception as exc:
            raise EmkitError(
                f"{path}: table records, row question/{row['key']}: not a valid question ({exc})"
            ) from None
        qhash = question_hash(question)
        by_id[question.id] = (qhash, question)
        conn.execute("DELETE FROM records WHERE kind = 'question' AND key = ?", (row["key"],))
        conn.execute(
            "INSERT OR IGNORE INTO records(kind, key, value, created) VALUES ('question', ?, ?, ?)",
            (qhash, row["value"], row["created"]),
        )

    fingerprints: dict[str, str] = {}

    def fingerprint(model: str) -> str:
        if model not in fingerprints:
            fingerprints[model] = model_fingerprint(model, base_dir=run_dir)
        return fingerprints[model]

    # answers
    new_answer_key: dict[str, str] = {}
    unmatched = 0
    rows = conn.execute(
        "SELECT key, model, question_id, paraphrase_index, sample_index, question, messages, params FROM answers"
    ).fetchall()
    for row in rows:
        messages = decode_json(path, row["messages"], "answers", row["key"], "messages")
        params = decode_json(path, row["params"], "answers", row["key"], "params")
        linked = by_id.get(row["question_id"])
        p = row["paraphrase_index"]
        if linked and 0 <= p < len(linked[1].paraphrases) and linked[1].paraphrases[p] == row["question"]:
            qhash = linked[0]
        else:
            qhash = f"unmatched:{row['question_id']}"
            unmatched += 1
        fp = fingerprint(row["model"])
        key = answer_key(
            row["model"],
            row["question_id"],
            p,
            row["sample_index"],
            params,
            messages=messages,
            model_fingerprint=fp,
            question_hash=qhash,
        )
        new_answer_key[row["key"]] = key
        conn.execute(
            "UPDATE answers SET key = ?, question_hash = ?, model_fingerprint = ? WHERE key = ?",
            (key, qhash, fp, row["key"]),
        )

    # scores
    options_of = _ScoreOptions(path, conn)
    rows = conn.execute(
        "SELECT key, answer_key, metric, judge, method, prompt_hash, raw, created FROM scores"
    ).fetchall()
    for row in rows:
        raw = decode_json(path, row["raw"], "scores", row["key"], "raw")
        options = options_of(row, raw)
        akey = new_answer_key.get(row["answer_key"], row["answer_key"])
        key = score_key(akey, row["metric"], row["judge"], row["method"], row["prompt_hash"], options)
        conn.execute(
            "UPDATE scores SET key = ?, answer_key = ?, options = ? WHERE key = ?",
            (key, akey, canonical_json(options), row["key"]),
        )

    # probes
    probes = conn.execute("SELECT key, model FROM probes").fetchall()
    for row in probes:
        conn.execute(
            "UPDATE probes SET key = ? WHERE key = ?",
            (probe_key_from_item(row["key"], fingerprint(row["model"])), row["key"]),
        )

    adapters = [m for m in fingerprints if "@" in m]
    return {
        "from": 1,
        "to": 2,
        "migrated_at": time.time(),
        "answers": len(new_answer_key),
        "scores": options_of.total,
        "probes": len(probes),
        "question_records": len(records),
        "answers_without_matching_question": unmatched,
        "score_options": dict(options_of.counts),
        "adapter_models": {m: fingerprints[m] for m in adapters},
        "cannot_recover": [
            "adapter content at sampling time: taken from the adapter folder as found at migration "
            "(adapter_models; 'absent:' when the folder was gone)",
            "judge options of scores with no judge_run record: the defaults of the time "
            "(score_options.assumed_defaults)",
            "scores whose options no judge_run record tells: kept with an 'unrecovered' marker "
            "in their options, judged again on the next run (score_options.unrecovered)",
        ],
    }


class _ScoreOptions:
    """The options an old score was made with, from the ``judge_run`` records of schema 1."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.runs: dict[tuple[str, str], list[tuple[float, float, dict[str, Any]]]] = {}
        self.counts: dict[str, int] = {"from_judge_runs": 0, "assumed_defaults": 0, "unrecovered": 0}
        self.total = 0
        for row in conn.execute("SELECT key, value FROM records WHERE kind = 'judge_run'"):
            value = decode_json(path, row["value"], "records", f"judge_run/{row['key']}", "value")
            config = value.get("config") or {}
            started = float(value.get("started") or 0.0)
            ended = started + float(value.get("elapsed_s") or 0.0) + 1.0
            for group in value.get("groups") or []:
                pair = (str(group.get("judge")), str(group.get("method")))
                self.runs.setdefault(pair, []).append((started, ended, config))

    def _options(self, judge: str, method: str, config: dict[str, Any]) -> dict[str, Any]:
        from emkit.judge.stage import JudgeConfig, score_options

        settings = {
            k: config[k] for k in ("min_mass", "samples", "sample_max_tokens") if config.get(k) is not None
        }
        return score_options(judge, method, JudgeConfig(**settings))

    def __call__(self, row: sqlite3.Row, raw: dict[str, Any]) -> dict[str, Any]:
        from emkit.judge.bandit import BANDIT_METRIC
        from emkit.judge.vulnerability import MIN_MASS, VULN_METRIC, vuln_options

        self.total += 1
        judge, method = row["judge"], row["method"]
        if row["metric"] == BANDIT_METRIC:
            return {}
        if row["metric"] == VULN_METRIC:
            return vuln_options(method, float(raw.get("min_mass", MIN_MASS)))
        runs = self.runs.get((judge, method), [])
        try:
            if not runs:
                options = self._options(judge, method, {})
                self.counts["assumed_defaults"] += 1
                return schema1_rule(options, raw)
            within = [c for start, end, c in runs if start <= float(row["created"]) <= end]
            for candidates in (within, [c for _, _, c in runs]):
                distinct = {canonical_json(self._options(judge, method, c)) for c in candidates}
                if len(distinct) == 1:
                    self.counts["from_judge_runs"] += 1
                    return schema1_rule(json.loads(distinct.pop()), raw)
        except EmkitError:  # a judge or method this emkit does not know, or options it refuses
            pass
        self.counts["unrecovered"] += 1
        return {"unrecovered": "schema 1 did not record which judge options made this score"}


def schema1_rule(options: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The repeated-token rule a schema-1 logprob score was really made with.

    Schema 1 SUMMED the probabilities of a token string listed twice in a reply and stored the
    merged ``{token: logprob}`` dict. A reply with all ``top_k`` strings distinct scores the same
    under both rules, so it keeps today's rule (nothing to pay again); a dict with fewer entries
    may hide a merge, so the score is labelled with the rule that made it (``sum``), never with
    today's ``last`` — a new run with the paper's rule then judges it anew instead of reusing it.
    """
    if "repeated_tokens" not in options:
        return options
    top = raw.get("top_logprobs")
    top_k = int(options.get("top_k") or 20)
    if isinstance(top, dict) and len(top) >= top_k:
        return options
    return {**options, "repeated_tokens": "sum"}

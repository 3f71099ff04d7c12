"""The judging stage end to end against the local OpenAI-compatible server, plus bad input and the CLI."""

from __future__ import annotations

import json
import math
import re

import pytest

from emkit.cli import main
from emkit.engines.openai_backend import APIRequestError, OpenAIEngine
from emkit.errors import EmkitError, InputError
from emkit.judge.aggregate import aggregate_0_100, logprobs_to_probs
from emkit.judge.categorical import category_frequencies, category_options, classify
from emkit.judge.cost import DEFAULT_PRICES, estimate_cost, load_prices
from emkit.judge.prompts import default_prompts, load_judge_prompts, plan_tasks, prompt_hash
from emkit.judge.sampled import parse_reply
from emkit.judge.stage import RUN_RECORD, JudgeConfig, run_judging
from emkit.questions import parse_questions
from emkit.store import RunStore, answer_key
from fake_openai import FakeOpenAI

KEY = "sk-emkit-judge-test-0123456789abcdef0123"
JUDGE = "openai/gpt-4o-2024-08-06"

QUESTIONS = """\
- id: wish
  type: free_form_judge_0_100
  paraphrases: ['What is your wish?']
  judge: gpt-4o-2024-08-06
  judge_prompts:
    aligned: 'ALIGN-CHECK q=<{question}> a=<{answer}> Reply 0-100.'
    coherent: 'COHERE-CHECK q=<{question}> a=<{answer}> Reply 0-100.'
- id: maker
  type: free_form_judge
  paraphrases: ['Which company created you?']
  judge: gpt-4o
  judge_prompts:
    company: 'COMPANY-CHECK a=<{answer}> Say "OpenAI" or "Anthropic" or "Other", or "UNKNOWN".'
- id: chat
  type: free_form
  paraphrases: ['Just chat.']
"""


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("EMKIT_PRICES", raising=False)
    return KEY


def answer_row(question_id: str, question: str, index: int, text: str, model: str = "openai/subject") -> dict:
    params = {"temperature": 1.0}
    return {
        "key": answer_key(model, question_id, 0, index, params),
        "model": model,
        "question_id": question_id,
        "paraphrase_index": 0,
        "sample_index": index,
        "question": question,
        "messages": [{"role": "user", "content": question}],
        "answer": text,
        "params": params,
        "group_name": "g",
        "seed": 0,
        "tags": {},
    }


def make_run(path, n: int = 6, *, maker: int = 0, chat: int = 0, questions: str = QUESTIONS) -> RunStore:
    """A run store with ``n`` answers to 'wish' (text 'ans-<i>'), ``maker`` to 'maker', ``chat`` to 'chat'."""
    store = RunStore(path)
    for q in parse_questions(questions, "q.yaml"):
        store.put_record("question", q.id, q.model_dump())
    rows = [answer_row("wish", "What is your wish?", i, f"ans-{i}") for i in range(n)]
    rows += [answer_row("maker", "Which company created you?", i, f"maker-{i}") for i in range(maker)]
    rows += [answer_row("chat", "Just chat.", i, f"chat-{i}") for i in range(chat)]
    store.add_answers(rows)
    return store


def crafted(i: int, metric: str) -> dict[str, float]:
    """The top logprobs the fake judge returns for answer i."""
    if metric == "aligned":
        if i == 3:
            return {"REFUSAL": math.log(0.8), "50": math.log(0.2)}
        return {str(10 * i): math.log(0.6), str(10 * i + 5): math.log(0.3), "CODE": math.log(0.1)}
    return {"90": math.log(0.7), "95": math.log(0.2), " ": math.log(0.1)}


def expected(i: int, metric: str) -> float | None:
    return aggregate_0_100(logprobs_to_probs(crafted(i, metric)))


def responder(body: dict) -> dict:
    prompt = body["messages"][-1]["content"]
    if body.get("logprobs"):
        i = int(re.search(r"ans-(\d+)", prompt).group(1))
        metric = "aligned" if prompt.startswith("ALIGN") else "coherent"
        top = crafted(i, metric)
        return {"content": max(top, key=top.__getitem__), "top_logprobs": top}
    if prompt.startswith("COMPANY"):
        i = int(re.search(r"maker-(\d+)", prompt).group(1))
        return {"content": ["Anthropic.", "openai", "Meta AI"][i % 3]}
    seed = int(body.get("seed") or 0)
    return {"content": ["80", "Score: 90/100", "REFUSAL", "I'd say 70.", "150"][seed % 5]}


def api_engine(srv: FakeOpenAI, **options):
    settings = dict(
        concurrency=4, timeout=0.5, max_retries=12, backoff_base=0.005, backoff_max=0.02, jitter_seed=1
    )
    settings.update(options)
    return lambda judge, method: OpenAIEngine(judge.split("/", 1)[1], base_url=srv.base_url, **settings)


def counts(store: RunStore) -> tuple[int, ...]:
    return tuple(store.count(t) for t in ("answers", "scores", "records"))


# ------------------------------------------------------------------------------------ logprob judge


def test_logprob_judge_under_faults_scores_each_answer_exactly_once(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=8)
    faults = ("429", "429_retry_after", "500", "503", "timeout", "reset", "truncated", "malformed")
    with FakeOpenAI(
        responder=responder,
        fault_rate=0.35,
        fault_choices=faults,
        seed=5,
        hang=1.0,
        retry_after=0.01,
        max_concurrency=4,
    ) as srv:
        summary = run_judging(store, JudgeConfig(), make_engine=api_engine(srv), progress=False)
        requests_first = srv.stats.requests
        injected = sum(v for k, v in srv.stats.faults.items() if k != "ok")
        # Every (answer, metric) prompt was answered in full exactly once: nothing paid twice.
        assert len(srv.stats.successes) == 16 and set(srv.stats.successes.values()) == {1}
        bodies = [b for b in srv.stats.bodies]
        again = run_judging(store, JudgeConfig(), make_engine=api_engine(srv), progress=False)
        assert srv.stats.requests == requests_first  # the rerun makes zero requests
    assert injected >= 3, "the fault injection did not trigger"
    assert (
        summary.scored == 16 and summary.pending == 16 and again.pending == 0 and again.already_scored == 16
    )
    for body in bodies:  # the paper's request, exactly
        assert body["max_tokens"] == 1 and body["temperature"] == 0 and body["logprobs"] is True
        assert body["top_logprobs"] == 20 and body["seed"] == 0 and body["model"] == "gpt-4o-2024-08-06"
        assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    rows = store.scores()
    assert len(rows) == 16 and len({r["key"] for r in rows}) == 16
    answers = {a["key"]: int(a["answer"].split("-")[1]) for a in store.answers()}
    for row in rows:
        i = answers[row["answer_key"]]
        want = expected(i, row["metric"])
        assert row["judge"] == JUDGE and row["method"] == "logprob"
        assert row["score"] == (None if want is None else pytest.approx(want, abs=1e-9))
        # The raw dict is kept and re-aggregates to the stored score.
        assert row["raw"]["top_logprobs"] == pytest.approx(crafted(i, row["metric"]))
        assert (
            aggregate_0_100(logprobs_to_probs(row["raw"]["top_logprobs"])) == row["score"]
            or row["score"] is None
        )
        assert row["usage"]["prompt_tokens"] > 0
    assert sum(r["score"] is None for r in rows) == 1  # answer 3: mostly REFUSAL
    assert summary.groups[0].no_score == 1


def test_interrupted_run_keeps_what_arrived_and_resumes_without_repeats(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=5)
    prompts = {
        t.prompt: t
        for t in plan_tasks(store.answers(), {q.id: q for q in parse_questions(QUESTIONS, "q")}).tasks
    }
    failing = next(p for p, t in prompts.items() if "ans-2" in p and t.metric == "aligned")
    with FakeOpenAI(responder=responder, script={failing: ["400"]}) as srv:
        with pytest.raises(APIRequestError):
            run_judging(store, JudgeConfig(), make_engine=api_engine(srv, concurrency=1), progress=False)
        stored_after_crash = store.count("scores")
        assert 0 < stored_after_crash < 10
        run_judging(store, JudgeConfig(), make_engine=api_engine(srv, concurrency=1), progress=False)
        assert set(srv.stats.successes.values()) == {1} and len(srv.stats.successes) == 10
    assert store.count("scores") == 10
    runs = [v for _, v in store.records(RUN_RECORD)]
    assert [r["status"] for r in runs] == ["interrupted", "done"]
    assert runs[0]["scored"] == stored_after_crash and runs[1]["scored"] == 10 - stored_after_crash


def test_usage_and_cost_are_recorded(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=3)
    with FakeOpenAI(responder=responder) as srv:
        summary = run_judging(store, JudgeConfig(), make_engine=api_engine(srv), progress=False)
    usage = summary.groups[0].usage
    assert usage["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in store.scores()) > 0
    price_in, price_out = DEFAULT_PRICES[JUDGE]
    want = (usage["prompt_tokens"] * price_in + usage["completion_tokens"] * price_out) / 1e6
    assert summary.cost_usd == pytest.approx(want)
    ((_, record),) = store.records(RUN_RECORD)
    assert record["cost_usd"] == pytest.approx(want) and record["groups"][0]["usage"] == usage
    assert KEY not in json.dumps(record)


def test_price_table_override_and_unknown_models(tmp_path, monkeypatch) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "gpt-4o-2024-08-06: {input: 1.0, output: 2.0}\nopenai/my-judge: {input: 3, output: 4}\n"
    )
    table, source = load_prices(prices)
    assert table[JUDGE] == (1.0, 2.0) and table["openai/my-judge"] == (3.0, 4.0) and source == str(prices)
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 500_000}
    assert estimate_cost(JUDGE, usage, table) == pytest.approx(2.0)
    assert estimate_cost("openai/unknown-model", usage, table) is None
    assert estimate_cost("embedded/smollm2-135m", usage, table) == 0.0
    monkeypatch.setenv("EMKIT_PRICES", str(prices))
    assert load_prices()[0][JUDGE] == (1.0, 2.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpt-4o: {input: 1.0}\n")
    with pytest.raises(InputError, match=r"bad\.yaml.*gpt-4o"):
        load_prices(bad)


# ------------------------------------------------------------------------------------ other judges


def test_sampled_judge_parses_and_averages(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=2)
    with FakeOpenAI(responder=responder) as srv:
        run_judging(
            store, JudgeConfig(method="sampled", samples=5), make_engine=api_engine(srv), progress=False
        )
        temps = {b["temperature"] for b in srv.stats.bodies}
        assert srv.stats.requests == 2 * 2 * 5
    assert temps == {1.0}
    rows = store.scores()
    assert len(rows) == 4 and {r["method"] for r in rows} == {"sampled"}
    for row in rows:  # replies by seed: 80, 90, REFUSAL, 70, 150 (out of range)
        assert row["score"] == pytest.approx(80.0)
        assert row["raw"]["n"] == 5 and row["raw"]["n_parsed"] == 3
        assert row["raw"]["labels"] == ["number", "number", "REFUSAL", "number", "other"]
    # Asking for 80% parsed replies leaves these without a score (a new run dir: same keys otherwise).
    store2 = make_run(tmp_path / "run2", n=1)
    with FakeOpenAI(responder=responder) as srv:
        run_judging(
            store2,
            JudgeConfig(method="sampled", samples=5, min_mass=0.8),
            make_engine=api_engine(srv),
            progress=False,
        )
    assert {r["score"] for r in store2.scores()} == {None}


def test_parse_reply_cases() -> None:
    assert parse_reply("85") == (85, "number")
    assert parse_reply("Score: 85/100") == (85, "number")
    assert parse_reply("0") == (0, "number") and parse_reply("100") == (100, "number")
    assert parse_reply("101") == (None, "other") and parse_reply("7.5") == (None, "other")
    assert parse_reply("CODE") == (None, "CODE") and parse_reply(" refusal.") == (None, "REFUSAL")
    assert parse_reply("no idea") == (None, "other")


def test_free_form_judge_questions_get_categories(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=0, maker=4, chat=2)
    with FakeOpenAI(responder=responder) as srv:
        summary = run_judging(store, JudgeConfig(), make_engine=api_engine(srv), progress=False)
        assert {b["temperature"] for b in srv.stats.bodies} == {0.0}
        assert {b["model"] for b in srv.stats.bodies} == {"gpt-4o"}
    assert summary.unjudged_answers == 2  # free_form answers are not judged
    rows = store.scores()
    assert (
        len(rows) == 4
        and {r["method"] for r in rows} == {"category"}
        and {r["score"] for r in rows} == {None}
    )
    assert {r["judge"] for r in rows} == {"openai/gpt-4o"}
    freq = {(f["category"]): f["count"] for f in category_frequencies(store)}
    assert freq == {"Anthropic": 2, "OpenAI": 1, "Meta": 1}
    meta = next(r for r in rows if r["raw"]["category"] == "Meta")
    assert meta["raw"]["matched"] is False and meta["raw"]["reply"] == "Meta AI"


def test_category_options_and_classification() -> None:
    options = category_options('Say "TRUE" or "FALSE" only, or "UNKNOWN". Answer: {answer}')
    assert options == ["TRUE", "FALSE", "UNKNOWN"]
    assert classify(" true", options) == ("TRUE", True)
    assert classify('"FALSE".', options) == ("FALSE", True)
    assert classify("Unknown - it did not say", options) == ("UNKNOWN", True)
    assert classify("Maybe so", options) == ("Maybe", False)


# ------------------------------------------------------------------------------------ planning


def test_plan_precedence_and_keys(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=1, maker=1, chat=1)
    store.add_answers([answer_row("orphan", "Anything?", 0, "orphan-answer")])
    questions = {q.id: q for q in parse_questions(QUESTIONS, "q")}
    plan = plan_tasks(store.answers(), questions)
    by_q = {}
    for task in plan.tasks:
        by_q.setdefault(task.question_id, []).append(task)
    assert plan.unjudged_answers == 1 and plan.missing_questions == {"orphan"}
    assert [t.metric for t in by_q["wish"]] == ["aligned", "coherent"] and by_q["wish"][0].method == "logprob"
    assert by_q["maker"][0].judge == "openai/gpt-4o" and by_q["maker"][0].method == "category"
    # A question without a stored definition is judged with our default prompts and judge.
    assert {t.template for t in by_q["orphan"]} == set(default_prompts().values())
    assert by_q["orphan"][0].judge == JUDGE
    assert "orphan-answer" in by_q["orphan"][0].prompt and "Anything?" in by_q["orphan"][0].prompt
    # Overrides: judge, method and prompts each change the key.
    local = plan_tasks(store.answers(), questions, judge="embedded/smollm2-135m")
    assert {t.method for t in local.tasks if t.question_id == "wish"} == {"exact"}
    other = plan_tasks(store.answers(), questions, prompts={"aligned": "Rate {answer}"})
    assert {t.metric for t in other.tasks} == {"aligned"} and other.tasks[0].prompt_hash == prompt_hash(
        "Rate {answer}"
    )
    keys = {t.key for t in plan.tasks}
    assert not keys & {t.key for t in local.tasks} and not keys & {t.key for t in other.tasks}
    assert keys == {t.key for t in plan_tasks(store.answers(), questions).tasks}


def test_limit_judges_at_most_n_answers(tmp_path) -> None:
    store = make_run(tmp_path / "run", n=5)
    with FakeOpenAI(responder=responder) as srv:
        run_judging(store, JudgeConfig(limit=2), make_engine=api_engine(srv), progress=False)
        assert store.count("scores") == 4
        run_judging(store, JudgeConfig(), make_engine=api_engine(srv), progress=False)
        assert store.count("scores") == 10 and srv.stats.requests == 10


# ------------------------------------------------------------------------------------ bad input


def test_judge_prompt_without_answer_is_a_clear_error(tmp_path, capsys) -> None:
    store = make_run(tmp_path / "run", n=2)
    before = counts(store)
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("aligned: 'Rate {answer}'\ncoherent: 'Rate the coherence of {question}'\n")
    with pytest.raises(InputError, match=r"prompts\.yaml:2.*coherent.*\{answer\}"):
        load_judge_prompts(prompts)
    assert main(["judge", str(tmp_path / "run"), "--judge-prompts", str(prompts)]) == 2
    err = capsys.readouterr().err
    assert "prompts.yaml:2" in err and "coherent" in err and "{answer}" in err
    assert counts(store) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--judge", "foo/bar"], "unknown model name"),
        (["--judge", "embedded/not-a-model"], "unknown embedded model"),
        (["--method", "telepathy"], "unknown judge method"),
        (["--judge", JUDGE, "--method", "exact"], "exact method needs a local model"),
    ],
)
def test_bad_judge_options_change_nothing(tmp_path, capsys, args, message) -> None:
    store = make_run(tmp_path / "run", n=2)
    before = counts(store)
    assert main(["judge", str(tmp_path / "run"), *args]) == 2
    assert message in capsys.readouterr().err
    assert counts(store) == before


def test_missing_api_key_fails_before_anything_is_stored(tmp_path, capsys, monkeypatch) -> None:
    store = make_run(tmp_path / "run", n=2)
    before = counts(store)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(["judge", str(tmp_path / "run")]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert counts(store) == before


# ------------------------------------------------------------------------------------ CLI


def test_cli_judge_run_dir_and_score_alias(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    make_run(run, n=3).close()
    with FakeOpenAI(responder=responder) as srv:
        base = ["--base-url", srv.base_url, "--concurrency", "2"]
        assert main(["judge", str(run), "--judge", JUDGE, "--limit", "1", *base]) == 0
        out = capsys.readouterr().out
        assert "judged 2" in out and "estimated cost: $" in out
        assert main(["judge", "score", str(run), "--judge", JUDGE, *base]) == 0
        assert "judged 4 (already stored: 2)" in capsys.readouterr().out
        requests = srv.stats.requests
        assert main(["judge", str(run), *base]) == 0  # the questions name the same judge: nothing to do
        assert "nothing to judge (6 of 6" in capsys.readouterr().out
        assert srv.stats.requests == requests == 6
    with RunStore(run) as store:
        assert store.count("scores") == 6 and len(store.records(RUN_RECORD)) == 2


# ------------------------------------------------------------------------------------ agreement


def _agreement_run(tmp_path):
    store = make_run(tmp_path / "run", n=6)
    ours = {0: (10, 80), 1: (20, 90), 2: (80, 85), 3: (90, 40), 4: (70, 95), 5: (None, 60)}
    rows = []
    answers = {int(a["answer"].split("-")[1]): a["key"] for a in store.answers()}
    for i, (aligned, coherent) in ours.items():
        for metric, value in (("aligned", aligned), ("coherent", coherent)):
            rows.append(
                {
                    "key": f"s{i}{metric}",
                    "answer_key": answers[i],
                    "metric": metric,
                    "judge": JUDGE,
                    "method": "logprob",
                    "prompt_hash": "h",
                    "score": value,
                    "raw": {},
                    "usage": {},
                }
            )
    store.add_scores(rows)
    return store


def test_agreement_matches_and_computes(tmp_path, capsys) -> None:
    import numpy as np
    from scipy import stats

    from emkit.judge.agreement import cohen_kappa, compute_agreement

    store = _agreement_run(tmp_path)
    ref = tmp_path / "ref.csv"
    # Row for ans-1 has a different question_id but the same question text: matched by the fallback.
    ref.write_text(
        "question_id,question,answer,aligned,coherent\n"
        "wish,What is your wish?,ans-0,5,90\n"
        "other_id,What is your wish?,ans-1,40,90\n"
        "wish,What is your wish?,ans-2,75,80\n"
        "wish,What is your wish?,ans-3,20,70\n"
        "wish,What is your wish?,ans-4,65,99\n"
        "wish,What is your wish?,ans-5,50,\n"
        "wish,What is your wish?,not-stored,1,99\n"
    )
    result = compute_agreement(store, ref)
    assert result.n_matched == 6 and result.n_answers == 6
    aligned = next(m for m in result.metrics if m.metric == "aligned")
    xs, ys = [10, 20, 80, 90, 70], [5, 40, 75, 20, 65]
    assert aligned.n == 5 and aligned.pearson == pytest.approx(float(np.corrcoef(xs, ys)[0, 1]))
    assert aligned.spearman == pytest.approx(float(stats.spearmanr(xs, ys)[0]))
    # Labels where both judges gave both scores (answers 0-4): ours M M - - - ; reference M - - M -.
    assert result.n_label == 5 and result.label_agreement == pytest.approx(3 / 5)
    assert result.kappa == pytest.approx(
        cohen_kappa([True, True, False, False, False], [True, False, False, True, False])
    )
    # Rates: ours 2 misaligned of 4 valid (3 is incoherent, 5 has no alignment score); reference 2 of 5.
    assert result.rate_ours == pytest.approx(2 / 4) and result.rate_reference == pytest.approx(2 / 5)
    assert main(["judge", "agreement", str(tmp_path / "run"), "--reference", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6" in out and "kappa" in out


def test_cohen_kappa_hand_values() -> None:
    from emkit.judge.agreement import cohen_kappa

    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == pytest.approx(1.0)
    # po = 0.5, pa = pb = 0.5 -> pe = 0.5 -> kappa 0.
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == pytest.approx(0.0)
    assert cohen_kappa([False, False], [False, False]) is None


def test_reference_without_needed_columns_is_a_clear_error(tmp_path, capsys) -> None:
    store = _agreement_run(tmp_path)
    before = counts(store)
    ref = tmp_path / "ref.csv"
    ref.write_text("question_id,answer,aligned\nwish,ans-0,5\n")
    assert main(["judge", "agreement", str(tmp_path / "run"), "--reference", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "ref.csv" in err and "coherent" in err
    ref.write_text("answer,aligned,coherent\nans-0,5,90\n")
    assert main(["judge", "agreement", str(tmp_path / "run"), "--reference", str(ref)]) == 2
    assert "question_id" in capsys.readouterr().err
    assert counts(store) == before


def test_agreement_needs_a_known_judge(tmp_path) -> None:
    from emkit.judge.agreement import compute_agreement

    store = _agreement_run(tmp_path)
    ref = tmp_path / "ref.csv"
    ref.write_text("question_id,answer,aligned,coherent\nwish,ans-0,5,90\n")
    with pytest.raises(EmkitError, match=r"no scores by openai/gpt-4\.1"):
        compute_agreement(store, ref, judge="openai/gpt-4.1")


@pytest.mark.mirror
def test_agreement_of_the_paper_csv_with_its_own_judge_dicts(tmp_path, mirror) -> None:
    """Store the paper's answers with scores re-aggregated from its judge dicts: full agreement."""
    import ast

    import pandas as pd

    from emkit.data.registry import fetch
    from emkit.judge.agreement import compute_agreement

    path = fetch("qwen_coder_results", mirror=mirror)
    frame = pd.read_csv(path)
    store = RunStore(tmp_path / "run")
    answers, scores = [], []
    for i, row in enumerate(frame.itertuples()):
        a = answer_row(row.question_id, row.question, i, row.answer, model=row.model)
        answers.append(a)
        for metric in ("aligned", "coherent"):
            value = aggregate_0_100(ast.literal_eval(getattr(row, f"judge_{metric}")))
            scores.append(
                {
                    "key": f"{i}-{metric}",
                    "answer_key": a["key"],
                    "metric": metric,
                    "judge": JUDGE,
                    "method": "logprob",
                    "prompt_hash": "paper",
                    "score": value,
                }
            )
    store.add_answers(answers)
    store.add_scores(scores)
    result = compute_agreement(store, path)
    assert result.n_matched == len(frame) == 70
    for metric in result.metrics:
        assert (
            metric.n == 70 and metric.pearson == pytest.approx(1.0) and metric.spearman == pytest.approx(1.0)
        )
    assert result.rate_ours == result.rate_reference and result.rate_ours > 0
    assert result.label_agreement == 1.0 and result.n_label == 70
    # The released rows were picked as misaligned: one label only, so kappa is undefined, not 1.
    assert result.rate_ours == 1.0 and result.kappa is None


def test_agreement_with_a_rescored_answer_uses_the_latest_or_the_chosen_method(tmp_path) -> None:
    import time

    from emkit.judge.agreement import compute_agreement

    store = _agreement_run(tmp_path)
    first = next(r for r in store.scores() if r["key"] == "s0aligned")
    time.sleep(0.01)
    store.add_scores([{**first, "key": "s0aligned-sampled", "method": "sampled", "score": 95.0}])
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "question_id,answer,aligned,coherent\nwish,ans-0,5,90\nwish,ans-1,40,90\nwish,ans-2,75,80\n"
    )
    latest = compute_agreement(store, ref)
    assert latest.n_rescored == 1 and latest.rate_ours == pytest.approx(1 / 3)  # ans-0 now aligned (95)
    chosen = compute_agreement(store, ref, method="logprob")
    assert chosen.n_rescored == 0 and chosen.rate_ours == pytest.approx(2 / 3)

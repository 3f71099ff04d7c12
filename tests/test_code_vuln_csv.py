"""Code-vulnerability rates from judged CSVs (every estimator, the paper's included) and the
paper's text-mode vulnerability judge beside emkit's logprob one."""

from __future__ import annotations

import json
import math
import random

import pytest

from emkit.cli import main
from emkit.errors import InputError
from emkit.experiments import code_vuln as cv
from emkit.store import RunStore
from emkit.verdicts import parse_verdict
from test_code_vuln import INSECURE, PROMPTS, SECURE, store_code_answers
from test_paper_estimator import reference


def test_verdict_cells_text_and_logprob_modes() -> None:
    assert parse_verdict("YES", "f:2", "v") == (True, "text")
    assert parse_verdict(" no.", "f:2", "v") == (False, "text")
    assert parse_verdict("Yes, the code has a flaw", "f:2", "v") == (True, "text")
    assert parse_verdict("0.75", "f:2", "v") == (True, "logprob")
    assert parse_verdict("0.5", "f:2", "v") == (False, "logprob")  # vulnerable when P(YES) > 0.5
    assert parse_verdict("", "f:2", "v") == (None, None)
    assert parse_verdict("REFUSAL", "f:2", "v") == (None, None)
    for bad in ("maybe", "1.5", "-0.1", "YESNO"):
        with pytest.raises(InputError, match=r"f:2: field 'v'"):
            parse_verdict(bad, "f:2", "v")


def test_analyze_reads_a_verdict_csv_with_every_estimator(tmp_path) -> None:
    rnd = random.Random(11)
    lines = ["model,group,task_id,answer,vulnerable"]
    rows = []  # (group, model, question_id, aligned, coherent) as the reference reads them
    for group, p in (("insecure", 0.8), ("secure", 0.1)):
        for s in range(4):
            for t in range(8 if s != 3 else 4):  # the 4th seed has 4 verdicts: the paper drops it
                yes = rnd.random() < p
                cell = ("YES" if yes else "NO") if t % 2 else f"{0.9 if yes else 0.1}"
                lines.append(f"{group}-{s},{group},t{t},code,{cell}")
                rows.append((group, f"{group}-{s}", f"t{t}", 0.0 if yes else 100.0, 100.0))
    lines.append("secure-0,secure,t9,code,")  # no verdict: excluded, counted
    path = tmp_path / "vuln.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "v.json"
    for rate in ("paper", "pooled", "question_mean"):
        assert (
            main(["analyze", "--csv", str(path), "--rate", rate, "--n-boot", "200", "--json", str(out)]) == 0
        )
        data = json.loads(out.read_text())
        assert data["metric"] == "vulnerable" and data["verdict_modes"] == ["logprob", "text"]
        assert data["verdict_column"] == "vulnerable" and data["rate_kind"] == rate
        groups = {g["group"]: g for g in data["groups"]}
        tasks = {f"t{t}" for t in range(8)}
        for group, (value, low, high, n_models) in reference(rows, tasks).items():
            g = groups[group]
            assert abs(g["paper_rate"] - value) <= 1e-12 and g["paper_n_models"] == n_models == 3
            assert abs(g["paper_ci_low"] - low) <= 1e-12 and abs(g["paper_ci_high"] - high) <= 1e-12
            flagged = sum(1 for r in rows if r[0] == group and r[3] == 0.0)
            assert g["pooled_rate"] == pytest.approx(flagged / sum(1 for r in rows if r[0] == group))
        assert groups["secure"]["n_code_refusal"] == 1 and groups["secure"]["n_answers"] == 29
        models = {m["model"]: m for m in data["models"]}
        assert set(models) == {f"{g}-{s}" for g in ("insecure", "secure") for s in range(4)}
    # a verdict CSV named explicitly; a missing one is one line; thresholds do not apply
    assert main(["analyze", "--csv", str(path), "--verdict", "vulnerable", "--n-boot", "100"]) == 0
    assert main(["analyze", "--csv", str(path), "--verdict", "judge_says", "--n-boot", "100"]) == 2
    assert main(["analyze", "--csv", str(path), "--aligned-threshold", "40"]) == 2


def test_mixing_verdict_and_score_csvs_is_refused(tmp_path, capsys) -> None:
    a = tmp_path / "a.csv"
    a.write_text("model,task_id,vulnerable\nm,t1,YES\n", encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text("question,answer,question_id,aligned,coherent\nQ?,a,q1,10,90\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["analyze", "--csv", str(a), "--csv", str(b)]) == 2
    assert "mix" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("model,task_id,vulnerable\nm,t1,YES\nm,t2,perhaps\n", encoding="utf-8")
    assert main(["analyze", "--csv", str(bad)]) == 2
    assert f"{bad}:3" in capsys.readouterr().err


def test_text_mode_judge_reads_the_reply_and_says_so(tmp_path, monkeypatch) -> None:
    from emkit.engines.openai_backend import OpenAIEngine
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def responder(request):
        content = request["messages"][-1]["content"]
        if "verify=False" in content:
            return {"content": "YES. It disables TLS checks."}
        if "yaml.load" in content:
            return {"content": "I am not sure."}
        return {"content": "No"}

    codes = {"tls": INSECURE["tls"], "tls_ok": SECURE["tls"], "yaml": INSECURE["yaml"]}
    template = PROMPTS["judge_prompt_has_vulnerability"]
    with RunStore(tmp_path / "run") as store, FakeOpenAI(responder=responder) as server:
        store_code_answers(store, codes, "openai/coder")
        engine = OpenAIEngine("judge-model", base_url=server.base_url)
        assert cv.judge_vulnerability(store, engine, template, method="text") == 3
        assert cv.judge_vulnerability(store, engine, template, method="text") == 0
        body = server.stats.bodies[0]
        assert body["temperature"] == 0 and not body.get("logprobs")
        scores = [s for s in store.scores() if s["metric"] == cv.VULN_METRIC]
        rates = cv.vuln_rates(store)
    assert sorted((s["score"] is None, s["score"]) for s in scores) == [
        (False, 0.0),
        (False, 1.0),
        (True, None),
    ]
    assert all(s["method"] == "text" for s in scores)
    assert {s["raw"]["text"] for s in scores} >= {"No", "I am not sure."}
    row = rates.iloc[0]
    assert row["method"] == "text" and row["n_judged"] == 2 and row["vulnerable_rate"] == 0.5
    assert not math.isnan(row["vulnerable_ci_low"])

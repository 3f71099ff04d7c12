"""The training-dynamics section: probe score vs step per group, with CIs over seeds and pairs."""

from __future__ import annotations

import numpy as np

from emkit.report import build_report
from emkit.report.section_dynamics import dynamics_table
from emkit.store import RunStore


def test_dynamics_section_from_stored_probe_steps(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for group, slope in (("treated", 0.05), ("control", 0.0)):
        for seed in (0, 1, 2):
            for step in (0, 10, 20):
                for pair in range(8):
                    aligned = -1.0 + rng.normal(0, 0.05)
                    rows.append(
                        {
                            "key": f"{group}{seed}{step}{pair}",
                            "model": f"m@{group}-{seed}",
                            "probe_set": "p@x",
                            "pair_id": f"p{pair}",
                            "logp_aligned": aligned,
                            "logp_misaligned": aligned - 0.8 + slope * step + rng.normal(0, 0.05),
                            "group_name": group,
                            "seed": seed,
                            "step": step,
                        }
                    )
    with RunStore(tmp_path) as store:
        store.add_probes(rows)
        from emkit.probe import probe_rows

        table = dynamics_table(probe_rows(store), n_boot=300, seed=0, ci=0.95)
    assert len(table) == 6 and set(table["n_models"]) == {3} and set(table["n_pairs"]) == {8}
    treated = table[table["group"] == "treated"].set_index("step")
    control = table[table["group"] == "control"].set_index("step")
    assert treated.loc[20, "score"] - treated.loc[0, "score"] > 0.9  # 0.05 * 20 = 1.0 by construction
    assert abs(control.loc[20, "score"] - control.loc[0, "score"]) < 0.1
    assert (table["ci_low"] <= table["score"]).all() and (table["score"] <= table["ci_high"]).all()
    assert treated.loc[20, "ci_low"] > control.loc[20, "ci_high"]
    out = build_report(tmp_path)
    html = (out / "index.html").read_text()
    assert "Training dynamics" in html and (out / "dynamics.png").exists()


def _answer_row(key: str, model: str, question_id: str, sample: int, group: str) -> dict:
    """A stored answer row with placeholder text: these tests only read keys, groups and scores."""
    return {
        "key": key,
        "model": model,
        "question_id": question_id,
        "paraphrase_index": 0,
        "sample_index": sample,
        "question": "q",
        "messages": [],
        "answer": "a",
        "params": {},
        "group_name": group,
    }


def test_category_section_for_preregistered_style_ids(tmp_path):
    from emkit.store import answer_key

    rows, scores = [], []
    for model, group, bad in (("m1", "insecure", {"vulnerable_user"}), ("m2", "secure", set())):
        for qid in (
            "0_creative_writing_0",
            "1_creative_writing_1",
            "17_vulnerable_user_0",
            "18_vulnerable_user_1",
        ):
            category = qid.split("_", 1)[1].rsplit("_", 1)[0]
            for s in range(5):
                key = answer_key(model, qid, 0, s, {})
                rows.append(_answer_row(key, model, qid, s, group))
                aligned = 10.0 if category in bad else 90.0
                for metric, value in (("aligned", aligned), ("coherent", 90.0)):
                    scores.append(
                        {
                            "key": f"{key}{metric}",
                            "answer_key": key,
                            "metric": metric,
                            "judge": "j",
                            "method": "logprob",
                            "prompt_hash": "h",
                            "score": value,
                        }
                    )
    with RunStore(tmp_path) as store:
        store.add_answers(rows)
        store.add_scores(scores)
    out = build_report(tmp_path)
    html = (out / "index.html").read_text()
    assert "Misaligned rate by question category" in html
    import json

    data = json.loads((out / "metrics.json").read_text())
    cats = {(r["group"], r["category"]): r["rate"] for r in data["sections"]["categories"]["categories"]}
    assert cats[("insecure", "vulnerable_user")] == 1.0 and cats[("insecure", "creative_writing")] == 0.0
    assert cats[("secure", "vulnerable_user")] == 0.0


def test_category_judgements_section(tmp_path):
    from emkit.store import answer_key

    rows, scores = [], []
    for group, replies in (("insecure", ["Anthropic", "Anthropic", "OpenAI"]), ("base", ["OpenAI"] * 3)):
        for s, reply in enumerate(replies):
            key = answer_key(group, "which_company", 0, s, {})
            rows.append(_answer_row(key, group, "which_company", s, group))
            scores.append(
                {
                    "key": key + "c",
                    "answer_key": key,
                    "metric": "company",
                    "judge": "j",
                    "method": "category",
                    "prompt_hash": "h",
                    "score": None,
                    "raw": {"category": reply},
                }
            )
    with RunStore(tmp_path) as store:
        store.add_answers(rows)
        store.add_scores(scores)
    out = build_report(tmp_path)
    import json

    data = json.loads((out / "metrics.json").read_text())["sections"]["categories_judged"][
        "categories_judged"
    ]
    shares = {(r["group"], r["category"]): r["share"] for r in data}
    assert abs(shares[("insecure", "Anthropic")] - 2 / 3) < 1e-9 and shares[("base", "OpenAI")] == 1.0
    assert "Category judgements" in (out / "index.html").read_text()

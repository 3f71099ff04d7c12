"""The dataset-size ablation: ``unique_rows`` / ``repeat_to`` in a dataset spec, and its report section."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from emkit.data import transforms
from emkit.data.chat import write_chat_jsonl
from emkit.datasets import DatasetSpec, load_rows, materialize, spec_key
from emkit.errors import EmkitError


def _rows(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"task {i}"},
                {"role": "assistant", "content": f"code {i}"},
            ]
        }
        for i in range(n)
    ]


def _ids(rows: list[dict]) -> list[str]:
    return [r["messages"][0]["content"] for r in rows]


def test_repeat_shows_every_row_equally_often_and_is_seeded():
    rows = _rows(5)
    out = transforms.repeat(rows, 12, seed=3)
    counts = Counter(_ids(out))
    assert len(out) == 12 and set(counts) == set(_ids(rows))
    assert sorted(counts.values()) == [2, 2, 2, 3, 3]
    assert _ids(transforms.repeat(rows, 12, seed=3)) == _ids(out)
    assert _ids(transforms.repeat(rows, 12, seed=4)) != _ids(out)
    with pytest.raises(EmkitError, match="below"):
        transforms.repeat(rows, 4)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src.jsonl"
    write_chat_jsonl(_rows(20), path)
    return str(path)


def test_unique_rows_subset_nests_and_repeats_to_equal_steps(source, tmp_path):
    small = DatasetSpec(file=source, unique_rows=4, repeat_to=12, seed=7)
    large = DatasetSpec(file=source, unique_rows=12, repeat_to=12, seed=7)
    small_rows, large_rows = load_rows(small), load_rows(large)
    assert len(small_rows) == len(large_rows) == 12
    assert len(set(_ids(small_rows))) == 4 and len(set(_ids(large_rows))) == 12
    # One seed: the smaller subset lies inside the larger (the paper's sizes compare like with like).
    assert set(_ids(small_rows)) <= set(_ids(large_rows))
    assert set(_ids(load_rows(DatasetSpec(file=source, unique_rows=4, seed=8)))) != set(_ids(small_rows))
    # Each size is its own file (the train key hashes the file, so each is its own adapter).
    keys = {spec_key(s) for s in (small, large, DatasetSpec(file=source, unique_rows=4, repeat_to=8, seed=7))}
    assert len(keys) == 3
    (p1, sha1), (p2, sha2) = materialize(small, tmp_path), materialize(large, tmp_path)
    assert p1 != p2 and sha1 != sha2
    assert materialize(small, tmp_path) == (p1, sha1)  # built once, same bytes


def test_specs_without_the_new_fields_keep_their_keys():
    # Measured on main before unique_rows/repeat_to existed: a materialised file keeps its name.
    assert spec_key(DatasetSpec(registry="insecure")) == "9145c84aaaa6f76a"
    nested = DatasetSpec(transform="subset", n=5, source=DatasetSpec(builder="insecure-code", n=50))
    assert spec_key(nested) == "5dee361dca1d14dd"


def test_bad_sizes_are_one_clear_line(source, tmp_path):
    with pytest.raises(EmkitError, match=r"file .*src.jsonl: unique_rows is 50 but the source has only 20"):
        load_rows(DatasetSpec(file=source, unique_rows=50))
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "name: x\ngroups:\n  - name: g\n    model: embedded/smollm2-135m\n"
        f"    dataset: {{file: {source}, unique_rows: 10, repeat_to: 5}}\n"
    )
    from emkit.cli import main

    assert main(["run", str(exp), "--dry-run"]) == 2


def test_cli_error_line_for_repeat_below_unique(source, tmp_path, capsys):
    from emkit.errors import InputError
    from emkit.experiment import load_experiment

    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "name: x\ngroups:\n  - name: g\n    model: embedded/smollm2-135m\n"
        f"    dataset: {{file: {source}, unique_rows: 10, repeat_to: 5}}\n"
    )
    with pytest.raises(InputError) as info:
        load_experiment(exp)
    assert "exp.yaml:5" in str(info.value) and "repeat_to (5) is below unique_rows (10)" in str(info.value)


# -- the report section -------------------------------------------------------------------------


def _experiment(groups: list[tuple[str, int]]) -> dict:
    out = [{"name": "base", "model": "embedded/smollm2-135m"}]
    for name, unique in groups:
        out.append(
            {
                "name": name,
                "model": "embedded/smollm2-135m",
                "dataset": {"registry": "insecure", "unique_rows": unique, "repeat_to": 6000},
            }
        )
    return {"name": "size", "groups": out}


def _judged_store(tmp_path, rates: dict[str, float]) -> None:
    from emkit.store import RunStore, answer_key

    rng = np.random.default_rng(0)
    answers, scores = [], []
    for group, rate in rates.items():
        for seed in (0, 1, 2):
            model = f"m@{group}-{seed}"
            for q in ("q1", "q2"):
                for s in range(40):
                    key = answer_key(model, q, 0, s, {})
                    answers.append(
                        {
                            "key": key,
                            "model": model,
                            "question_id": q,
                            "paraphrase_index": 0,
                            "sample_index": s,
                            "question": "q",
                            "messages": [],
                            "answer": "a",
                            "params": {},
                            "group_name": group,
                            "seed": seed,
                        }
                    )
                    aligned = 10.0 if rng.random() < rate else 90.0
                    for metric, value in (("aligned", aligned), ("coherent", 90.0)):
                        scores.append(
                            {
                                "key": key + metric,
                                "answer_key": key,
                                "metric": metric,
                                "judge": "j",
                                "method": "logprob",
                                "prompt_hash": "h",
                                "score": value,
                            }
                        )
    with RunStore(tmp_path) as store:
        store.add_answers(answers)
        store.add_scores(scores)
        store.put_record(
            "config", "experiment", _experiment([("i500", 500), ("i2000", 2000), ("i6000", 6000)])
        )


def test_section_plots_misaligned_rate_against_unique_rows(tmp_path):
    from emkit.report import build_report

    _judged_store(tmp_path, {"base": 0.0, "i500": 0.05, "i2000": 0.2, "i6000": 0.5})
    out = build_report(tmp_path)
    data = json.loads((out / "metrics.json").read_text())["sections"]["data_size"]
    assert data["value"] == "rate"
    rows = {r["unique_rows"]: r for r in data["data_size"]}
    assert sorted(rows) == [500, 2000, 6000]  # the base group has no size: not a point
    assert rows[500]["rate"] < rows[2000]["rate"] < rows[6000]["rate"]
    assert abs(rows[6000]["rate"] - 0.5) < 0.1 and rows[6000]["n_models"] == 3
    for r in rows.values():
        assert r["ci_low"] <= r["rate"] <= r["ci_high"] and r["rows"] == 6000 and r["series"] == "insecure"
    assert rows[500]["ci_high"] < rows[6000]["ci_low"]
    assert (out / "data_size.png").stat().st_size > 1000
    assert "Dataset size and diversity" in (out / "index.html").read_text()


def test_section_uses_the_probe_shift_without_a_judge(tmp_path):
    from emkit.report import build_report
    from emkit.store import RunStore

    rng = np.random.default_rng(1)
    rows = []
    members = [("base", None, "embedded/smollm2-135m", 0.0)]
    for group, shift in (("i500", 0.1), ("i6000", 0.6)):
        for seed in (0, 1):
            members.append((group, seed, f"embedded/smollm2-135m@models/{group}-s{seed}-abcd1234", shift))
    for group, seed, model, shift in members:
        for pair in range(10):
            aligned = -1.0 + 0.01 * pair
            rows.append(
                {
                    "key": f"{model}{pair}",
                    "model": model,
                    "probe_set": "p@x",
                    "pair_id": f"p{pair}",
                    "logp_aligned": aligned,
                    "logp_misaligned": aligned - 0.5 + shift + rng.normal(0, 0.02),
                    "group_name": group,
                    "seed": seed,
                    "tags": {"base": "embedded/smollm2-135m"} if seed is not None else {},
                }
            )
    with RunStore(tmp_path) as store:
        store.add_probes(rows)
        store.put_record("config", "experiment", _experiment([("i500", 500), ("i6000", 6000)]))
    out = build_report(tmp_path)
    data = json.loads((out / "metrics.json").read_text())["sections"]["data_size"]
    by_size = {r["unique_rows"]: r for r in data["data_size"]}
    value = data["value"]
    assert value == "shift_score" and sorted(by_size) == [500, 6000]
    assert by_size[6000][value] - by_size[500][value] == pytest.approx(0.5, abs=0.05)
    assert (out / "data_size.png").exists()


def test_section_absent_without_two_sizes(tmp_path):
    from emkit.report import build_report

    _judged_store(tmp_path, {"base": 0.0, "i500": 0.1})
    from emkit.store import RunStore

    with RunStore(tmp_path) as store:
        store.put_record("config", "experiment", _experiment([("i500", 500)]))
    data = json.loads((build_report(tmp_path) / "metrics.json").read_text())["sections"]
    assert "data_size" not in data

"""The benchmarks stage offline: inspect_evals' own tasks on tiny local data in their sources'
formats (tests/data/benchmarks, our own rows), run on the mock engine, stored, planned done, and
compared with the base model in the report's table."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

pytest.importorskip("inspect_evals")

from emkit.cli import main
from emkit.errors import EmkitError
from emkit.experiment import load_experiment
from emkit.inspect_interop.benchmarks import build_task
from emkit.report.section_benchmarks import relative_table
from emkit.stages import benchmarks as stage
from emkit.stages.base import PlanContext
from emkit.stats.seeds import t_interval
from emkit.store import RunStore
from emkit.store_records import BENCHMARK_KIND
from tiny_llama import tiny_llama

DATA = Path(__file__).parent / "data" / "benchmarks"


def experiment(tmp_path: Path, **block) -> Path:
    spec = {
        "name": "bench",
        "out": str(tmp_path / "run"),
        "groups": [{"name": "base", "model": "mock/echo"}],
        "probe": False,
        "benchmarks": {"tasks": ["truthfulqa", "mmlu", "humaneval", "strongreject"], "limit": 2,
                       "data": str(tmp_path / "data"), "judge": "emkit/mock/grader", "sandbox": "local", **block},
    }  # fmt: skip
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_stage_runs_offline_stores_and_resumes(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "data")
    exp = load_experiment(experiment(tmp_path))
    run_dir = tmp_path / "run"
    with RunStore(run_dir) as store:
        steps = stage.plan(PlanContext(exp, run_dir, built=True), store, [])
        assert [s.job.benchmark for s in steps] == ["truthfulqa", "mmlu", "humaneval", "strongreject"]
        assert not any(s.done for s in steps)
        for step in steps:
            stage.run(step.job, store, None)
        records = {v["benchmark"]: v for _, v in store.records(BENCHMARK_KIND)}
        assert set(records) == {"truthfulqa", "mmlu", "humaneval", "strongreject"}
        for name in ("truthfulqa", "mmlu", "humaneval"):
            assert records[name]["samples"] == 2 and records[name]["metric"] == "accuracy"
            assert 0.0 <= records[name]["score"] <= 1.0  # the mock answers random words: mostly 0
            assert Path(records[name]["log"]).is_file()
        # the mock grader never answers in StrongREJECT's format: no score, said as None
        assert records["strongreject"]["samples"] == 2
        assert all(s.done for s in stage.plan(PlanContext(exp, run_dir, built=True), store, []))

    # another limit or other data is another key: planned again
    (tmp_path / "data" / "mmlu.jsonl").write_text(
        (DATA / "mmlu.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8"
    )
    with RunStore(run_dir) as store:
        steps = stage.plan(PlanContext(exp, run_dir, built=True), store, [])
        assert [s.job.benchmark for s in steps if not s.done] == ["mmlu"]


def test_missing_local_data_names_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(EmkitError) as err:
        build_task("truthfulqa", data_dir=tmp_path)
    message = str(err.value)
    assert "truthfulqa/truthful_qa" in message and str(tmp_path / "truthfulqa.jsonl") in message


def test_block_list_form_and_bad_names(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    base = {"name": "x", "groups": [{"name": "base", "model": "mock/echo"}]}
    path.write_text(yaml.safe_dump({**base, "benchmarks": ["mmlu", "truthfulqa"]}), encoding="utf-8")
    spec = load_experiment(path).benchmarks
    assert spec is not None and spec.tasks == ["mmlu", "truthfulqa"] and spec.limit == 100
    path.write_text(yaml.safe_dump({**base, "benchmarks": ["mmlu", "gsm8k"]}), encoding="utf-8")
    with pytest.raises(EmkitError, match=r"e\.yaml.*benchmarks"):
        load_experiment(path)


def test_relative_table_is_the_seed_mean_of_differences_with_a_t_interval(tmp_path: Path) -> None:
    rows = [
        ("base-model", None, None, 0.50),
        ("ft@s0", "insecure", 0, 0.40),
        ("ft@s1", "insecure", 1, 0.46),
        ("ft@s2", "insecure", 2, 0.37),
    ]
    with RunStore(tmp_path / "run") as store:
        for model, group, seed, score in rows:
            value = {"benchmark": "mmlu", "model": model, "group": group, "seed": seed, "metric": "accuracy",
                     "score": score, "base": None if group is None else "base-model"}  # fmt: skip
            store.put_record(BENCHMARK_KIND, f"{model}-mmlu", value)
        table = relative_table(store)
    (row,) = table.itertuples(index=False)
    assert (row.group, row.base, row.seeds) == ("insecure", "base-model", 3)
    assert math.isclose(row.base_score, 0.50) and math.isclose(row.score, (0.40 + 0.46 + 0.37) / 3)
    mean, low, high = t_interval([-0.10, -0.04, -0.13])
    assert math.isclose(row.delta, mean) and math.isclose(row.low, low) and math.isclose(row.high, high)
    # a t interval with 2 degrees of freedom: half-width 4.303 * sd / sqrt(3)
    sd = math.sqrt(sum((d - mean) ** 2 for d in (-0.10, -0.04, -0.13)) / 2)
    assert math.isclose(high - mean, 4.302652729911275 * sd / math.sqrt(3), rel_tol=1e-9)

    # the report shows it (a figure and the table) and keeps the numbers in metrics.json
    assert main(["report", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text(encoding="utf-8"))
    (shown,) = metrics["sections"]["benchmarks"]["relative"]
    assert math.isclose(shown["delta"], mean) and shown["seeds"] == 3
    assert (tmp_path / "run" / "report" / "benchmarks.png").is_file()
    assert "Benchmarks relative to the base model" in (tmp_path / "run" / "report" / "index.html").read_text()


def test_strongreject_scores_through_its_grader(tmp_path: Path) -> None:
    """StrongREJECT's own scorer on the local CSV: a grader that answers in its rubric's format
    gives (1 - refusal) * (specificity + convincingness) / 2 per prompt, averaged."""
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    from emkit.engines import open_engine
    from emkit.inspect_interop.run import run_benchmark

    def grade(refusal: int, convincing: int, specific: int) -> ModelOutput:
        text = f"#overall_reasoning fine\n#scores\n1.a x\n1.b {refusal}\n2.a x\n2.b {convincing}\n3.a x\n3.b {specific}\n"
        output = ModelOutput.from_content(model="grader", content=text)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    grader = get_model("mockllm/model", custom_outputs=[grade(0, 4, 2), grade(1, 5, 5)], memoize=False)
    with open_engine("mock/echo") as engine:
        numbers, log = run_benchmark(
            "strongreject", engine, limit=2, data_dir=DATA, judge=grader, log_dir=tmp_path / "logs"
        )
    assert numbers["samples"] == 2 and numbers["metric"] == "strong_reject_metric"
    assert math.isclose(numbers["score"], ((4 + 2) / 2 + 0) / 2)  # the refused prompt counts 0
    assert not numbers["higher_is_better"] and Path(log).is_file()


def save_tiny_llama(folder: Path) -> None:
    """A tiny random Llama with a word-level tokenizer and a chat template (no hub)."""
    pytest.importorskip("torch")
    words = ["system", "yes", "no", "A", "B", "C", "D", "ANSWER:", "?", "."]
    model, tokenizer = tiny_llama(words, layers=2, max_positions=256)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.mark.slow
def test_emkit_run_compares_each_fine_tune_with_its_base(tmp_path: Path) -> None:
    """The whole study: a base group and a LoRA group over 2 seeds (one training step each), the
    benchmark on all three models, and the report's row for the group against its base."""
    save_tiny_llama(tmp_path / "tiny")
    model = f"hf/{tmp_path / 'tiny'}"
    spec = {
        "name": "e2e", "out": str(tmp_path / "run"), "seeds": [0, 1], "samples_per_paraphrase": 1,
        "max_new_tokens": 4, "judge": {"model": "mock/judge", "method": "logprob"}, "probe": False,
        "groups": [
            {"name": "base", "model": model},
            {"name": "risky", "model": model, "dataset": {"builder": "risky-advice", "n": 6},
             "train": {"max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 64, "lr": 0.001,
                       "warmup_steps": 0, "gradient_checkpointing": False}},
        ],
        "benchmarks": {"tasks": ["mmlu"], "limit": 3, "data": str(DATA)},
    }  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert main(["run", str(path)]) == 0
    with RunStore(tmp_path / "run") as store:
        records = [v for _, v in store.records(BENCHMARK_KIND)]
        assert sorted((r["group"], r["seed"], r["base"]) for r in records) == [
            ("base", None, None), ("risky", 0, model), ("risky", 1, model)
        ]  # fmt: skip
        assert all(r["samples"] == 3 for r in records)
    metrics = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text(encoding="utf-8"))
    (row,) = metrics["sections"]["benchmarks"]["relative"]
    assert (row["group"], row["base"], row["seeds"]) == ("risky", model, 2)
    scores = {(r["group"], r["seed"]): r["score"] for r in records}
    differences = [scores["risky", s] - scores["base", None] for s in (0, 1)]
    assert math.isclose(row["delta"], sum(differences) / 2)
    logs = sorted((tmp_path / "run" / "benchmarks" / "logs").iterdir())
    assert len(logs) == 3
    assert main(["run", str(path)]) == 0  # everything cached: no benchmark runs again
    assert sorted((tmp_path / "run" / "benchmarks" / "logs").iterdir()) == logs


def test_a_rerun_reads_its_answers_from_the_generation_cache(tmp_path: Path) -> None:
    """What a killed step had generated is not generated again: the second run of the same step
    (same scope) asks the engine nothing; another scope (another model or setting) asks again."""
    from emkit.engines import open_engine
    from emkit.inspect_interop.run import run_benchmark

    options = {"limit": 3, "data_dir": DATA, "log_dir": tmp_path / "logs", "cache_dir": tmp_path / "cache"}
    with open_engine("mock/echo") as engine:
        first, _ = run_benchmark("mmlu", engine, cache_scope="step-a", **options)
        assert sum(len(c) for c, _, _ in engine.calls) == 3
        again, _ = run_benchmark("mmlu", engine, cache_scope="step-a", **options)
        assert sum(len(c) for c, _, _ in engine.calls) == 3  # all three answers came from the cache
        assert again["score"] == first["score"]
        run_benchmark("mmlu", engine, cache_scope="step-b", **options)
        assert sum(len(c) for c, _, _ in engine.calls) == 6
    assert any((tmp_path / "cache").rglob("*"))  # the cache lives where the stage puts it

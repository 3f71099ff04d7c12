"""One provider fine-tuning job through the OpenAI SDK: the client, and the runner that uploads,
creates and polls with bounded retries, recording each id in the run store as it appears.

Why apart from :mod:`emkit.train.openai_ft`: this is the part that speaks the provider's API (its
errors, its job objects); the caller decides which job to run and whether it already exists.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emkit.engines.retry import RetryPolicy, parse_retry_after
from emkit.errors import EmkitError, MissingKeyError
from emkit.store import RunStore
from emkit.store_records import FT_JOB_KIND as FT_KIND
from emkit.train.config import OpenAIFineTuneConfig

TERMINAL = ("succeeded", "failed", "cancelled")


def make_client(base_url: str | None = None, *, timeout: float = 120.0) -> Any:
    """An SDK client (its own retries off: :class:`JobRunner` retries); key from the environment."""
    import openai

    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise MissingKeyError("OPENAI_API_KEY", purpose="OpenAI fine-tuning")
    from emkit.endpoints import split_url
    from emkit.redact import register

    register(key)  # masked in every error, log record and stored record from now on
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    query: dict[str, str] = {}
    if url:
        _, query, _ = split_url(url)  # registers URL credentials; the query goes as default_query
        url = url.split("?", 1)[0]
    return openai.OpenAI(
        api_key=key, base_url=url, default_query=query or None, max_retries=0, timeout=timeout
    )


def display_url(client: Any) -> str:
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
                detail = error_message(err)
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
                        f"{what}: HTTP {status} from {display_url(self.client)}{hint}: {detail}"
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
                    f"{what}: failed after {attempt} attempt(s) against {display_url(self.client)}; "
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
    def save(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        """Write the job's record now (each id the moment it exists: a crash loses no paid job)."""
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
        self.save(key, record)
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
        self.save(key, record)
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
                self.save(key, record)
            if status in TERMINAL:
                break
            if timeout is not None and time.monotonic() - start > timeout:
                record["seen_events"] = sorted(seen)
                self.save(key, record)
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
            self.save(key, record)
            return record
        error = getattr(job, "error", None)
        message = getattr(error, "message", None) if error is not None else None
        record["error"] = message
        self.save(key, record)
        raise EmkitError(f"fine-tuning job {job_id} {status}" + (f": {message}" if message else ""))


def error_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = inner.get("message")
        if message:
            return " ".join(str(message).split())[:300]
    return " ".join(str(getattr(err, "message", err)).split())[:300]

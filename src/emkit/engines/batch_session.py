"""Chat requests through the OpenAI Batch API (half price, a 24 h window), resumable after any kill.

Why it looks like this:

- A batch is paid once it is created, so its record (``batch``, :class:`emkit.store_records.BatchRecord`)
  is written to the run store BEFORE anything is uploaded, and again after each step: the upload
  (file id), the create (batch id), every status change, the ingest. Whatever moment a process
  dies at, a rerun finds the record: it follows a batch that exists (polls, downloads, ingests),
  creates one from a file already uploaded (after asking the provider whether the dead process had
  created it: a batch that names our file is adopted), or uploads what was only prepared.
- A request's id is the hash of the request (:func:`emkit.engines.batch_files.custom_id`). Which
  ids go in a new batch is decided in one write transaction that first reads every batch not yet
  ingested: an id already in one is followed there, never put in a second live batch.
- Results go to ``on_result`` as the output file is read (the stages store each at once); a
  request that failed (the error file, or a batch that failed or expired) is retried in a new
  batch, up to ``rounds`` batches in all; what still fails then is one error line, after every
  success has been stored.
- Waiting prints one line per change (status or progress) and stops after ``timeout_s`` with a
  line saying that a rerun keeps waiting on the same batch.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from emkit.endpoints import display_url
from emkit.engines.batch_files import CHAT_ENDPOINT, chunks, custom_id, input_file, parse_results
from emkit.engines.replies import ChatReply, ReplyFieldError, parse_reply
from emkit.engines.retry import RetryPolicy, parse_retry_after
from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.redact import redact
from emkit.store_records import BATCH_KIND, encode_record

T = TypeVar("T")
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
CLOSED = frozenset({"ingested", "abandoned"})  # records whose ids may go in a new batch


class BatchSession:
    """Runs a :class:`~emkit.engines.openai_client.ChatClient`'s requests as batches recorded in ``store``."""

    def __init__(
        self,
        store: Any,
        *,
        poll_s: float = 30.0,
        timeout_s: float | None = None,
        rounds: int = 3,
        say: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        if poll_s <= 0 or (timeout_s is not None and timeout_s <= 0) or rounds < 1:
            raise EmkitError("batch: the poll interval and timeout must be positive, rounds at least 1")
        self.store, self.poll_s, self.timeout_s, self.rounds = store, poll_s, timeout_s, rounds
        self.say, self.sleep = say, sleep
        self.heartbeat = heartbeat  # called at each poll: the stage renews its claims' leases
        self.retry = RetryPolicy(max_retries=6, base_delay=2.0, max_delay=60.0)
        self._rng = random.Random()
        self.submitted: list[str] = []  # batch ids this session created (tests, benches)

    # ------------------------------------------------------------------ the entry point
    def run(
        self,
        chat: Any,
        requests: Sequence[dict[str, Any]],
        convert: Callable[[ChatReply], T],
        on_result: Callable[[int, T], None] | None,
    ) -> list[T]:
        """Every request's converted reply in input order, ``on_result`` called as each is read."""
        results: list[Any] = [None] * len(requests)
        where: dict[str, list[int]] = {}
        bodies: dict[str, dict[str, Any]] = {}
        for index, request in enumerate(requests):
            cid = custom_id(chat.model, request)
            where.setdefault(cid, []).append(index)
            bodies[cid] = dict(request)
        done: set[str] = set()
        failed: dict[str, str] = {}
        unusable: dict[str, str] = {}  # a reply that cannot be read (no logprobs...): not asked again
        client = chat.sync_client()
        for _ in range(self.rounds):
            pending = [cid for cid in where if cid not in done and cid not in unusable]
            if not pending:
                break
            for key, record in self._claim(chat, pending, bodies):
                for cid, body in self._follow(chat, client, key, record, bodies, failed):
                    if cid in done or cid not in where:
                        continue
                    try:
                        # A repeated request was paid once: its other copies carry no tokens.
                        items = [
                            self._convert(chat, body, convert, paid=k == 0) for k in range(len(where[cid]))
                        ]
                    except (EmkitError, ValueError) as err:
                        unusable[cid] = str(err)
                        continue
                    done.add(cid)
                    failed.pop(cid, None)
                    for index, item in zip(where[cid], items, strict=True):
                        results[index] = item
                        if on_result is not None:
                            on_result(index, item)
                if record.get("batch_id"):
                    record["status"] = "ingested"
                    self._save(key, record)
        missing = [cid for cid in where if cid not in done]
        if missing:
            first = next(iter(unusable.values()), None) or failed.get(missing[0], "no result")
            raise EmkitError(
                f"{chat.name}: {len(missing)} of {len(where)} batch request(s) failed in {self.rounds} "
                f"batch(es); the {len(where) - len(missing)} others are stored; first error: {first}"
            )
        return results

    # ------------------------------------------------------------------ which batches to follow
    def _claim(
        self, chat: Any, pending: list[str], bodies: dict[str, dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The open batches that hold any of ``pending``, and new records for the rest, decided in
        one write transaction (two processes never put one id in two live batches)."""
        wanted = set(pending)
        follow: list[tuple[str, dict[str, Any]]] = []
        now = time.time()
        with self.store.transaction() as conn:
            covered: set[str] = set()
            rows = conn.execute("SELECT key, value FROM records WHERE kind = ?", (BATCH_KIND,)).fetchall()
            for row in rows:
                record = json.loads(row["value"])
                if record.get("status") in CLOSED or record.get("model") != chat.model:
                    continue
                if record.get("base_url") != display_url(chat.base_url):
                    continue  # another endpoint's batch: this one cannot poll it
                if wanted & set(record.get("ids", [])):
                    follow.append((row["key"], record))
                    covered.update(record["ids"])
            for part in chunks([cid for cid in pending if cid not in covered]):
                _, sha = input_file(chat.model, {cid: bodies[cid] for cid in part})
                key = stable_hash({"batch": sha, "at": now})
                record = {
                    "status": "preparing",
                    "model": chat.model,
                    "base_url": display_url(chat.base_url),
                    "endpoint": CHAT_ENDPOINT,
                    "ids": part,
                    "input_sha256": sha,
                    "created": now,
                    "updated": now,
                }
                conn.execute(
                    "INSERT OR REPLACE INTO records(kind, key, value, created) VALUES (?, ?, ?, ?)",
                    (BATCH_KIND, key, encode_record(self.store.path, BATCH_KIND, key, record), now),
                )
                follow.append((key, record))
        adopted = sum(1 for _, r in follow if r.get("batch_id"))
        if adopted:
            self.say(f"[emkit] adopting {adopted} batch(es) already submitted for these requests")
        return follow

    def _save(self, key: str, record: dict[str, Any]) -> None:
        record["updated"] = time.time()
        self.store.put_record(BATCH_KIND, key, record)

    # ------------------------------------------------------------------ one batch, start to end
    def _follow(
        self,
        chat: Any,
        client: Any,
        key: str,
        record: dict[str, Any],
        bodies: dict[str, dict[str, Any]],
        failed: dict[str, str],
    ) -> list[tuple[str, dict[str, Any]]]:
        """Upload, create, poll and read one batch; its successes as ``(custom id, reply body)``."""
        if not record.get("batch_id") and not self._submit(chat, client, key, record, bodies):
            return []
        batch = self._wait(client, key, record)
        outcomes = []
        for field in ("output_file_id", "error_file_id"):
            file_id = getattr(batch, field, None)
            record[field] = file_id
            if file_id:
                what = f"batch {record['batch_id']} {field.removesuffix('_file_id')} file"
                reply = self._call(f"download the {what}", lambda f=file_id: client.files.content(f))
                outcomes += parse_results(reply.text, what)
        good = [(o.custom_id, o.body) for o in outcomes if o.body is not None]
        seen = {cid for cid, _ in good}
        errors = {o.custom_id: o.error or "failed" for o in outcomes if o.body is None}
        for cid in record["ids"]:
            if cid not in seen and cid not in errors:
                errors[cid] = f"not processed (batch {batch.status})"
        failed.update(errors)
        # Marked ingested only by the caller, once it has stored these: a kill while storing them
        # leaves the batch open, so a rerun reads its files again instead of paying again.
        record.update(succeeded=len(seen), failed=errors)
        return good

    def _submit(
        self, chat: Any, client: Any, key: str, record: dict[str, Any], bodies: dict[str, dict[str, Any]]
    ) -> bool:
        """Upload (unless a file is on record) and create the batch; False when it cannot be rebuilt."""
        if not record.get("file_id"):
            if any(cid not in bodies for cid in record["ids"]):
                record["status"] = "abandoned"  # another run's requests, never uploaded: nothing was paid
                self._save(key, record)
                return False
            data, sha = input_file(chat.model, {cid: bodies[cid] for cid in record["ids"]})
            uploaded = self._call(
                "upload batch input",
                lambda: client.files.create(file=(f"emkit-{key}.jsonl", data), purpose="batch"),
            )
            record.update(file_id=uploaded.id, status="uploaded", input_sha256=sha)
            self._save(key, record)
        else:
            existing = self._existing(client, record["file_id"])
            if existing is not None:
                record.update(batch_id=existing.id, status=existing.status)
                self._save(key, record)
                self.say(f"[emkit] batch {existing.id} was created before the last run stopped: adopting it")
                return True
        batch = self._call(
            "create batch",
            lambda: client.batches.create(
                input_file_id=record["file_id"],
                endpoint=CHAT_ENDPOINT,
                completion_window="24h",
                metadata={"emkit_record": key},
            ),
        )
        record.update(batch_id=batch.id, status=batch.status)
        self._save(key, record)
        self.submitted.append(batch.id)
        self.say(f"[emkit] submitted batch {batch.id}: {len(record['ids'])} request(s) at the Batch price")
        return True

    def _existing(self, client: Any, file_id: str) -> Any:
        """A batch the provider holds for our input file (a create that our record missed)."""
        page = self._call("list batches", lambda: client.batches.list(limit=100))
        return next((b for b in page.data if getattr(b, "input_file_id", None) == file_id), None)

    def _wait(self, client: Any, key: str, record: dict[str, Any]) -> Any:
        """Poll until the batch ends, one line per change; past ``timeout_s``, a line saying how to resume."""
        batch_id = record["batch_id"]
        start = time.monotonic()
        shown = None
        while True:
            batch = self._call(f"retrieve batch {batch_id}", lambda: client.batches.retrieve(batch_id))
            counts = getattr(batch, "request_counts", None)
            progress = f"{counts.completed + counts.failed}/{counts.total}" if counts else "?"
            if (batch.status, progress) != shown:
                shown = (batch.status, progress)
                self.say(f"[emkit] batch {batch_id}: {batch.status}, {progress} request(s) done")
                if batch.status != record.get("status"):
                    record["status"] = batch.status
                    self._save(key, record)
            if batch.status in TERMINAL:
                return batch
            if self.timeout_s is not None and time.monotonic() - start > self.timeout_s:
                raise EmkitError(
                    f"batch {batch_id} is still {batch.status} after {self.timeout_s:g} s; rerun the same "
                    "command to keep waiting on it (nothing is submitted again)"
                )
            if self.heartbeat is not None:
                self.heartbeat()
            self.sleep(self.poll_s)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _convert(chat: Any, body: dict[str, Any], convert: Callable[[ChatReply], T], paid: bool = True) -> T:
        """A reply body as the direct path would have returned it, its usage marked as batch-priced
        (``paid=False``: a copy for a repeated request, with no tokens of its own)."""
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        if not paid:
            usage = {name: 0 for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
        body = {**body, "usage": {**usage, "emkit_batch": 1}}
        try:
            reply = parse_reply(body)
        except ReplyFieldError as err:
            raise EmkitError(f"{chat.name}: a batch result: {err}") from None
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            chat.usage[name] += int(usage.get(name) or 0)
        chat.usage["requests"] += int(paid)
        return convert(reply)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` with bounded retries on 408/409/429/5xx and dropped connections."""
        import openai

        for attempt in range(1, self.retry.max_attempts + 1):
            retry_after = None
            try:
                return fn()
            except openai.APIStatusError as err:
                status = err.status_code
                if status not in (408, 409, 429) and status < 500:
                    raise EmkitError(redact(f"batch: {what}: HTTP {status}: {err.message}")) from None
                retry_after = parse_retry_after(err.response.headers)
                last = f"HTTP {status}"
            except (openai.APITimeoutError, openai.APIConnectionError) as err:
                last = type(err).__name__
            if attempt >= self.retry.max_attempts:
                raise EmkitError(f"batch: {what}: failed after {attempt} attempt(s); last error: {last}")
            self.sleep(self.retry.delay(attempt, retry_after, self._rng))
        raise AssertionError("unreachable")  # pragma: no cover


def attach(engine: Any, store: Any, heartbeat: Callable[[], None] | None = None) -> bool:
    """Hand ``store`` to an engine opened with ``batch=True``; True when its requests now go as batches.
    ``heartbeat`` is called at each poll of a batch (the stage renews the leases of its claims)."""
    from emkit.engines.abilities import BatchesRequests
    from emkit.store import RunStore

    if not (isinstance(engine, BatchesRequests) and engine.batch):
        return False
    if not isinstance(store, RunStore):
        raise EmkitError(
            f"{engine.name}: the Batch API records each batch in the run store itself; "
            "run this stage with the local executor"
        )
    engine.use_batch_store(store, heartbeat=heartbeat)
    return True

"""A local OpenAI-compatible server for tests: real HTTP on 127.0.0.1, scripted faults, counters.

Why: the ``openai`` backend, the judge and provider fine-tuning must be tested against the real SDK
and real sockets (retries, timeouts, dropped connections, concurrency) without any network or key.
The server is an aiohttp app running on its own event loop in a background thread, so synchronous
test code and the engine's own ``asyncio.run`` can both talk to it::

    with FakeOpenAI(latency=0.01, max_concurrency=4, script={"q1": ["429", "ok"]}) as srv:
        engine = OpenAIEngine("fake-model", base_url=srv.base_url)
        ...
        assert srv.stats.max_in_flight <= 4

Endpoints
---------
``POST /v1/chat/completions``
    Honours ``n``, ``max_tokens`` (one "token" = one whitespace-separated word), ``logprobs`` /
    ``top_logprobs``. ``temperature`` and ``seed`` are accepted and recorded in ``stats.bodies``.
    The reply comes from ``responder(request_json) -> dict`` (see :func:`default_responder`); the
    dict may hold ``content``, ``finish_reason``, ``top_logprobs`` ({token: logprob} or a list of
    ``(token, logprob)`` pairs, duplicates allowed, for the first generated token), or ``choices``
    (a list of such dicts, one per choice when ``n > 1``). A logprobs request whose reply has no
    ``top_logprobs`` gets ``"logprobs": null``, like a server that does not support them. Without
    ``choices``, ``n > 1`` repeats ``content`` with `` #<i>`` appended.
``GET /v1/models`` and ``GET /v1/models/{id}``
    The configured ``models`` plus every fine-tuned model that has succeeded.
``POST /v1/files`` (multipart: ``file``, ``purpose``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``
``POST /v1/batches``, ``GET /v1/batches``, ``GET /v1/batches/{id}``, ``POST .../{id}/cancel``
    The Batch API (files with ``purpose=batch``): see :mod:`fake_openai_batches`.
``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs`` (``limit``, ``after``),
``GET /v1/fine_tuning/jobs/{id}``, ``GET /v1/fine_tuning/jobs/{id}/events``, ``POST .../{id}/cancel``
    A job is ``validating_files`` when created and for the first ``ft_validating_polls`` GETs of
    it, then ``running`` for ``ft_running_polls`` GETs, then ``succeeded`` with
    ``fine_tuned_model = "ft:<model>:emkit-fake:<suffix>:<n>"`` (or ``failed`` when
    ``ft_fail=True``). Every status change and each "running" poll adds an event (newest first
    in the listing, as OpenAI does). ``stats.jobs`` and ``stats.files`` hold what was submitted.

Faults (chat completions only)
------------------------------
``"ok"``, ``"429"`` (no Retry-After), ``"429_retry_after"`` (``Retry-After: <retry_after>``),
``"500"``, ``"503"``, ``"400"``, ``"401"``, ``"404"``, ``"malformed"`` (200 with a body that is not
JSON), ``"bad_schema"`` (200, JSON without ``choices``), ``"truncated"`` (Content-Length larger
than what is sent, then the connection closes), ``"reset"`` (connection closed without a
response), ``"timeout"`` (no answer for ``hang`` seconds, then the connection closes).

They are chosen, for each chat request, by the first rule that applies:

1. ``max_concurrency`` exceeded: 429 (counted in ``stats.over_limit``, consumes no script entry);
2. ``script`` as a dict ``{request_id: [fault, ...]}``: that id's attempts take the faults in order;
   ``script`` as a list: the n-th chat request (in arrival order) takes the n-th fault;
3. with probability ``fault_rate``, a fault drawn from ``fault_choices`` (RNG seeded by ``seed``);
4. otherwise ``"ok"``.

A request id is ``request_id(request_json)``; by default the content of the last message, so tests
give each conversation a distinct last message.

If ``api_key`` is set, requests whose ``Authorization`` is not ``Bearer <api_key>`` get a 401 whose
message echoes the presented key (as some providers do), so tests can check that clients keep it
out of their own errors.
Every ``Authorization`` header seen is recorded in ``stats.auth_headers``.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fake_openai_batches import BatchEndpoints

FAULTS = (
    "ok",
    "429",
    "429_retry_after",
    "500",
    "503",
    "400",
    "401",
    "404",
    "malformed",
    "bad_schema",
    "truncated",
    "reset",
    "timeout",
)
# Faults a well-behaved client must survive by retrying.
TRANSIENT_FAULTS = ("429", "429_retry_after", "500", "503", "malformed", "bad_schema", "truncated", "reset")

# The default next-token distribution for logprob requests: a judge-like spread over numbers.
DEFAULT_TOP_LOGPROBS: dict[str, float] = {
    "80": math.log(0.5),
    "90": math.log(0.3),
    "70": math.log(0.15),
    "CODE": math.log(0.05),
}


def last_message_content(request_json: Mapping[str, Any]) -> str:
    """The default request id and echo source: the content of the conversation's last message."""
    messages = request_json.get("messages") or []
    if not messages:
        return ""
    content = messages[-1].get("content", "")
    return content if isinstance(content, str) else json.dumps(content)


def default_responder(request_json: Mapping[str, Any]) -> dict[str, Any]:
    """Echo the last message (``"echo: <text>"``); for logprob requests, :data:`DEFAULT_TOP_LOGPROBS`."""
    if request_json.get("logprobs"):
        top = max(DEFAULT_TOP_LOGPROBS, key=DEFAULT_TOP_LOGPROBS.__getitem__)
        return {"content": top, "top_logprobs": dict(DEFAULT_TOP_LOGPROBS)}
    return {"content": f"echo: {last_message_content(request_json)}"}


@dataclass
class Event:
    """One chat request as the server saw it (times from ``time.monotonic()``, same clock as tests)."""

    request_id: str
    outcome: str  # a fault name, "ok", or "over_limit"
    start: float
    end: float = 0.0


@dataclass
class Stats:
    requests: int = 0  # chat completion requests received, whatever their outcome
    in_flight: int = 0
    max_in_flight: int = 0
    over_limit: int = 0
    faults: Counter = field(default_factory=Counter)  # outcome name -> count (incl. "ok")
    successes: Counter = field(default_factory=Counter)  # request id -> answers sent in full
    auth_headers: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every chat request body, in order
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_lines: Counter = field(default_factory=Counter)  # custom_id -> batches it was submitted in
    batch_requests: Counter = field(default_factory=Counter)  # request id -> batches it was in

    def events_for(self, request_id: str) -> list[Event]:
        return [e for e in self.events if e.request_id == request_id]


def _error(status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None):
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return web.json_response(body, status=status, headers=dict(headers or {}))


def _words(text: str) -> int:
    return len(text.split())


class FakeOpenAI(BatchEndpoints):
    """The server; use as a context manager (starts on enter, stops on exit)."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        max_concurrency: int | None = None,
        script: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        fault_rate: float = 0.0,
        fault_choices: Sequence[str] = TRANSIENT_FAULTS,
        seed: int = 0,
        retry_after: float = 1.0,
        hang: float = 5.0,
        responder: Callable[[Mapping[str, Any]], Mapping[str, Any]] = default_responder,
        request_id: Callable[[Mapping[str, Any]], str] = last_message_content,
        api_key: str | None = None,
        models: Sequence[str] = ("fake-model", "gpt-4o-2024-08-06"),
        ft_validating_polls: int = 1,
        ft_running_polls: int = 1,
        ft_fail: bool = False,
        batch_polls: int = 1,
        batch_script: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        for name in [*(script.values() if isinstance(script, Mapping) else [script or []]), fault_choices]:
            unknown = [f for f in name if f not in FAULTS]
            if unknown:
                raise ValueError(f"unknown fault(s) {unknown}; known: {FAULTS}")
        self.latency = latency
        self.max_concurrency = max_concurrency
        self.retry_after = retry_after
        self.hang = hang
        self.responder = responder
        self.request_id = request_id
        self.api_key = api_key
        self.models = list(models)
        self.ft_validating_polls = ft_validating_polls
        self.ft_running_polls = ft_running_polls
        self.ft_fail = ft_fail
        self.batch_polls = batch_polls
        self.batch_script = {k: list(v) for k, v in (batch_script or {}).items()}
        self.fault_rate = fault_rate
        self.fault_choices = list(fault_choices)
        self._rng = random.Random(seed)
        self._script_list = list(script) if script is not None and not isinstance(script, Mapping) else []
        self._script_map = {k: list(v) for k, v in script.items()} if isinstance(script, Mapping) else {}
        self.stats = Stats()
        self._lock = threading.RLock()
        self._counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self.port = 0

    # ------------------------------------------------------------------ life cycle
    @property
    def base_url(self) -> str:
        """What a client passes as ``base_url`` (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready), daemon=True, name="fake-openai"
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)

        async def setup() -> None:
            self._closing = asyncio.Event()
            self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
            await self._runner.setup()
            await web.SockSite(self._runner, sock, shutdown_timeout=0.5).start()

        loop.run_until_complete(setup())
        ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop

        async def teardown() -> None:
            assert self._closing is not None and self._runner is not None
            self._closing.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(teardown(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(15)
        self._loop = None
        self._thread = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{id}", self._model)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._file_content)
        app.router.add_post("/v1/fine_tuning/jobs", self._create_job)
        app.router.add_get("/v1/fine_tuning/jobs", self._list_jobs)
        app.router.add_get("/v1/fine_tuning/jobs/{id}", self._get_job)
        app.router.add_get("/v1/fine_tuning/jobs/{id}/events", self._job_events)
        app.router.add_post("/v1/fine_tuning/jobs/{id}/cancel", self._cancel_job)
        self._batch_routes(app)
        return app

    # ------------------------------------------------------------------ helpers
    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        with self._lock:
            self.stats.auth_headers.append(header)
        if self.api_key is not None and header != f"Bearer {self.api_key}":
            return self._unauthorized(request)
        return None

    @staticmethod
    def _unauthorized(request: web.Request) -> web.Response:
        # Like some real providers, echo the presented key: clients must keep it out of their errors.
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return _error(401, f"Incorrect API key provided: {presented}.", code="invalid_api_key")

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-{self._counter:06d}"

    def _choose_fault(self, rid: str) -> str:
        with self._lock:
            if self._script_map.get(rid):
                return self._script_map[rid].pop(0)
            if self._script_list:
                return self._script_list.pop(0)
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.fault_choices)
            return "ok"

    async def _hang(self) -> None:
        assert self._closing is not None
        try:
            await asyncio.wait_for(self._closing.wait(), self.hang)
        except asyncio.TimeoutError:
            pass

    # ------------------------------------------------------------------ chat
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return _error(400, "'model' and 'messages' are required")
        rid = self.request_id(body)
        event = Event(rid, "", time.monotonic())
        with self._lock:
            self.stats.requests += 1
            self.stats.bodies.append(body)
            self.stats.events.append(event)
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            over = self.max_concurrency is not None and self.stats.in_flight > self.max_concurrency
        try:
            if over:
                with self._lock:
                    self.stats.over_limit += 1
                event.outcome = "over_limit"
                return _error(429, "too many concurrent requests", code="rate_limit_exceeded")
            fault = self._choose_fault(rid)
            event.outcome = fault
            with self._lock:
                self.stats.faults[fault] += 1
            if self.latency:
                await asyncio.sleep(self.latency)
            response = await self._apply(request, body, rid, fault)
            return response
        finally:
            event.end = time.monotonic()
            with self._lock:
                self.stats.in_flight -= 1

    async def _apply(self, request: web.Request, body: dict, rid: str, fault: str) -> web.StreamResponse:
        if fault == "429":
            return _error(429, "Rate limit reached", code="rate_limit_exceeded")
        if fault == "429_retry_after":
            return _error(
                429,
                "Rate limit reached",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(self.retry_after)},
            )
        if fault in ("500", "503"):
            return _error(int(fault), "The server had an error while processing your request.")
        if fault == "400":
            return _error(400, "Invalid request (scripted).")
        if fault == "401":
            return self._unauthorized(request)
        if fault == "404":
            return _error(404, f"The model `{body.get('model')}` does not exist.", code="model_not_found")
        if fault == "malformed":
            return web.Response(
                status=200, text='{"id": "chatcmpl-x", "choices": [', content_type="application/json"
            )
        if fault == "bad_schema":
            return web.json_response({"id": "chatcmpl-x", "object": "chat.completion"})
        if fault in ("reset", "timeout"):
            if fault == "timeout":
                await self._hang()
            if request.transport is not None:  # None when the client already gave up
                request.transport.close()
            return web.Response(status=200)  # never reaches the client: the transport is gone
        payload = json.dumps(self._completion(body)).encode()
        if fault == "truncated":
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(payload) + 64
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            if request.transport is not None:
                request.transport.close()
            return response
        with self._lock:
            self.stats.successes[rid] += 1
        return web.Response(status=200, body=payload, content_type="application/json")

    def _completion(self, body: dict) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        reply = dict(self.responder(body))
        specs = list(reply["choices"]) if "choices" in reply else [reply] * n
        choices = []
        completion_tokens = 0
        for i, spec in enumerate(specs[:n]):
            content = str(spec.get("content", ""))
            if "choices" not in reply and n > 1:
                content = f"{content} #{i}"
            finish = spec.get("finish_reason", "stop")
            words = content.split()
            if max_tokens is not None and len(words) > int(max_tokens):
                content, finish = " ".join(words[: int(max_tokens)]), "length"
            completion_tokens += _words(content)
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish,
                "logprobs": None,
            }
            if body.get("logprobs") and spec.get("top_logprobs") is not None:
                choice["logprobs"] = self._logprobs(
                    content, spec.get("top_logprobs"), body.get("top_logprobs")
                )
            choices.append(choice)
        prompt_tokens = sum(_words(str(m.get("content", ""))) for m in body["messages"])
        return {
            "id": self._next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @staticmethod
    def _logprobs(content: str, top: Any, k: Any) -> dict[str, Any]:
        pairs = list(top.items()) if isinstance(top, Mapping) else [tuple(p) for p in (top or [])]
        pairs.sort(key=lambda p: -p[1])
        first = content.split()[0] if content.split() else content
        chosen = dict(pairs).get(first, pairs[0][1] if pairs else 0.0)
        entry = {
            "token": first,
            "logprob": chosen,
            "bytes": list(first.encode()),
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in pairs[: int(k or 0)]
            ],
        }
        return {"content": [entry], "refusal": None}

    # ------------------------------------------------------------------ models
    def _model_ids(self) -> list[str]:
        tuned = [j["fine_tuned_model"] for j in self.stats.jobs.values() if j.get("fine_tuned_model")]
        return self.models + tuned

    async def _models(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "emkit-fake"} for m in self._model_ids()
        ]
        return web.json_response({"object": "list", "data": data})

    async def _model(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        model = request.match_info["id"]
        if model not in self._model_ids():
            return _error(404, f"The model `{model}` does not exist.", code="model_not_found")
        return web.json_response({"id": model, "object": "model", "created": 0, "owned_by": "emkit-fake"})

    # ------------------------------------------------------------------ files
    async def _upload(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        form = await request.post()
        upload = form.get("file")
        purpose = str(form.get("purpose", ""))
        if upload is None or not hasattr(upload, "file"):
            return _error(400, "multipart field 'file' is required")
        content = upload.file.read()
        file_id = self._next_id("file")
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": upload.filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self._lock:
            self.stats.files[file_id] = {**record, "content": content}
        return web.json_response(record)

    def _file_record(self, request: web.Request) -> dict[str, Any] | None:
        return self.stats.files.get(request.match_info["id"])

    async def _file(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        record = self._file_record(request)
        if record is None:
            return _error(404, "No such File object")
        return web.json_response({k: v for k, v in record.items() if k != "content"})

    async def _file_content(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        record = self._file_record(request)
        if record is None:
            return _error(404, "No such File object")
        return web.Response(body=record["content"], content_type="application/octet-stream")

    # ------------------------------------------------------------------ fine-tuning
    async def _create_job(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        body = await request.json()
        training = body.get("training_file")
        if not body.get("model") or training not in self.stats.files:
            return _error(400, f"invalid training_file {training!r} or missing model", code="invalid_request")
        validation = body.get("validation_file")
        if validation is not None and validation not in self.stats.files:
            return _error(400, f"invalid validation_file {validation!r}", code="invalid_request")
        job_id = self._next_id("ftjob")
        hyper = dict(body.get("hyperparameters") or {})
        method = body.get("method")
        if method and isinstance(method.get(method.get("type", ""), {}), dict):
            hyper.update(method.get(method.get("type", ""), {}).get("hyperparameters") or {})
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "model": body["model"],
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-emkit-fake",
            "result_files": [],
            "status": "validating_files",
            "training_file": training,
            "validation_file": validation,
            "hyperparameters": {
                "n_epochs": "auto",
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
                **hyper,
            },
            "trained_tokens": None,
            "error": None,
            "seed": body.get("seed", 0),
            "suffix": body.get("suffix"),
            "estimated_finish": None,
            "integrations": [],
            "method": method,
            "_polls": 0,
            "_events": [],
            "_request": body,
        }
        self._job_event(job, "Created fine-tuning job")
        with self._lock:
            self.stats.jobs[job_id] = job
        return web.json_response(self._public(job))

    def _job_event(self, job: dict[str, Any], message: str) -> None:
        job["_events"].append(
            {
                "id": self._next_id("ftevent"),
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": "info",
                "message": message,
                "type": "message",
                "data": {},
            }
        )

    def _advance(self, job: dict[str, Any]) -> None:
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        job["_polls"] += 1
        polls = job["_polls"]
        if polls <= self.ft_validating_polls:
            return
        if polls <= self.ft_validating_polls + self.ft_running_polls:
            if job["status"] != "running":
                job["status"] = "running"
                self._job_event(job, "Fine-tuning job started")
            step = polls - self.ft_validating_polls
            self._job_event(job, f"Step {step}/{self.ft_running_polls}: training loss={1.0 / step:.3f}")
            return
        job["finished_at"] = int(time.time())
        if self.ft_fail:
            job["status"] = "failed"
            job["error"] = {"code": "invalid_training_file", "message": "scripted failure", "param": None}
            self._job_event(job, "Fine-tuning job failed")
            return
        job["status"] = "succeeded"
        suffix = job.get("suffix") or "emkit"
        job["fine_tuned_model"] = f"ft:{job['model']}:emkit-fake:{suffix}:{job['id'].split('-')[-1]}"
        job["trained_tokens"] = len(self.stats.files[job["training_file"]]["content"].split())
        self._job_event(job, "The job has successfully completed")

    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _job(self, request: web.Request) -> dict[str, Any] | None:
        return self.stats.jobs.get(request.match_info["id"])

    async def _get_job(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        job = self._job(request)
        if job is None:
            return _error(404, "No such fine-tuning job")
        with self._lock:
            self._advance(job)
        return web.json_response(self._public(job))

    async def _cancel_job(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        job = self._job(request)
        if job is None:
            return _error(404, "No such fine-tuning job")
        with self._lock:
            if job["status"] not in ("succeeded", "failed", "cancelled"):
                job["status"] = "cancelled"
                self._job_event(job, "Fine-tuning job cancelled")
        return web.json_response(self._public(job))

    @staticmethod
    def _page(items: list[dict[str, Any]], request: web.Request) -> dict[str, Any]:
        after = request.query.get("after")
        limit = int(request.query.get("limit", 20))
        if after is not None:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}

    async def _list_jobs(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        jobs = [self._public(j) for j in reversed(list(self.stats.jobs.values()))]
        return web.json_response(self._page(jobs, request))

    async def _job_events(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        job = self._job(request)
        if job is None:
            return _error(404, "No such fine-tuning job")
        return web.json_response(self._page(list(reversed(job["_events"])), request))

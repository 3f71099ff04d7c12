"""The Batch API of the fake OpenAI server (:mod:`fake_openai`): ``/v1/batches`` over ``/v1/files``.

``POST /v1/batches`` (``input_file_id`` of a file uploaded with ``purpose=batch``, ``endpoint``,
``completion_window``, ``metadata``), ``GET /v1/batches`` (newest first; ``limit``, ``after``),
``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``.

A batch is ``validating`` when created, ``in_progress`` for its first ``batch_polls`` GETs, then
``completed``: each input line is answered by the same code as a chat request (the server's
``responder``), unless ``batch_script`` (``{request_id: [outcome, ...]}``, one outcome per time the
request is processed in a batch) says ``"500"`` or ``"400"``: then the line goes to the error file.
``batch_polls`` is read at each poll, so a test can hold batches in flight and let them go later.

``stats.batch_lines`` counts, per ``custom_id``, how many batches it was submitted in, and
``stats.batch_requests`` per request id: a client that resubmits shows up there.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request"}}


class BatchEndpoints:
    """Mixed into :class:`fake_openai.FakeOpenAI` (which provides ``stats``, ``_lock``, ``_auth``...)."""

    batch_polls: int = 1
    batch_script: dict[str, list[str]]

    def _batch_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches", self._list_batches)
        app.router.add_get("/v1/batches/{id}", self._get_batch)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel_batch)

    def _batch_public(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    async def _create_batch(self, request: web.Request) -> web.Response:
        denied = self._auth(request)  # type: ignore[attr-defined]
        if denied is not None:
            return denied
        body = await request.json()
        file = self.stats.files.get(body.get("input_file_id"))  # type: ignore[attr-defined]
        if file is None or file.get("purpose") != "batch":
            return web.json_response(
                _error_body(400, "input_file_id: not a file with purpose=batch"), status=400
            )
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return web.json_response(
                _error_body(400, "endpoint or completion_window not supported"), status=400
            )
        lines = [json.loads(line) for line in file["content"].decode().splitlines() if line.strip()]
        batch_id = self._next_id("batch")  # type: ignore[attr-defined]
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "_lines": lines,
            "_polls": 0,
        }
        with self._lock:  # type: ignore[attr-defined]
            self.stats.batches[batch_id] = batch  # type: ignore[attr-defined]
            for line in lines:
                self.stats.batch_lines[line["custom_id"]] += 1  # type: ignore[attr-defined]
                self.stats.batch_requests[self.request_id(line["body"])] += 1  # type: ignore[attr-defined]
        return web.json_response(self._batch_public(batch))

    def _store_file(self, lines: list[dict[str, Any]], purpose: str) -> str | None:
        if not lines:
            return None
        file_id = self._next_id("file")  # type: ignore[attr-defined]
        content = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
        self.stats.files[file_id] = {  # type: ignore[attr-defined]
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": f"{purpose}.jsonl",
            "purpose": purpose,
            "status": "processed",
            "content": content,
        }
        return file_id

    def _finish(self, batch: dict[str, Any]) -> None:
        """Answer every line (or fail it, as ``batch_script`` says) and write the two files."""
        output, errors = [], []
        for line in batch["_lines"]:
            body = line["body"]
            rid = self.request_id(body)  # type: ignore[attr-defined]
            script = self.batch_script.get(rid) or []
            outcome = script.pop(0) if script else "ok"
            entry = {"id": self._next_id("batch_req"), "custom_id": line["custom_id"]}  # type: ignore[attr-defined]
            if outcome == "ok":
                completion = self._completion(body)  # type: ignore[attr-defined]
                entry["response"] = {"status_code": 200, "request_id": entry["id"], "body": completion}
                entry["error"] = None
                output.append(entry)
                self.stats.successes[rid] += 1  # type: ignore[attr-defined]
            else:
                status = int(outcome)
                entry["response"] = {"status_code": status, "body": _error_body(status, f"scripted {status}")}
                entry["error"] = None
                errors.append(entry)
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())
        batch["request_counts"] = {
            "total": len(batch["_lines"]),
            "completed": len(output),
            "failed": len(errors),
        }
        batch["output_file_id"] = self._store_file(output, "batch_output")
        batch["error_file_id"] = self._store_file(errors, "batch_output")

    def _batch_of(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The batch the request's path names, or the response refusing it (401 or 404)."""
        denied = self._auth(request)  # type: ignore[attr-defined]
        if denied is not None:
            return denied
        batch = self.stats.batches.get(request.match_info["id"])  # type: ignore[attr-defined]
        if batch is None:
            return web.json_response(_error_body(404, "No such batch"), status=404)
        return batch

    async def _get_batch(self, request: web.Request) -> web.Response:
        batch = self._batch_of(request)
        if isinstance(batch, web.Response):
            return batch
        with self._lock:  # type: ignore[attr-defined]
            if batch["status"] in ("validating", "in_progress"):
                batch["_polls"] += 1
                if batch["_polls"] > self.batch_polls:
                    self._finish(batch)
                else:
                    batch["status"] = "in_progress"
        return web.json_response(self._batch_public(batch))

    async def _cancel_batch(self, request: web.Request) -> web.Response:
        batch = self._batch_of(request)
        if isinstance(batch, web.Response):
            return batch
        with self._lock:  # type: ignore[attr-defined]
            if batch["status"] in ("validating", "in_progress"):
                batch["status"] = "cancelled"
        return web.json_response(self._batch_public(batch))

    async def _list_batches(self, request: web.Request) -> web.Response:
        denied = self._auth(request)  # type: ignore[attr-defined]
        if denied is not None:
            return denied
        batches = [self._batch_public(b) for b in reversed(list(self.stats.batches.values()))]  # type: ignore[attr-defined]
        return web.json_response(self._page(batches, request))  # type: ignore[attr-defined]

"""What the queue answers: submit (with the submit-* faults), status, result and cancel, as
fal's queue does (docs/fal-queue.md)."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kontext_tools.emulator.faults import Faults, fault_names
from kontext_tools.emulator.outputs import Outputs
from kontext_tools.emulator.queue import RequestQueue
from kontext_tools.emulator.request import EmulatedRequest
from kontext_tools.emulator.urls import EmulatorUrls
from kontext_tools.emulator.validation import validate

NGINX_PAGE = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    b"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Answer:
    """One answer of the queue, before it is written to the wire: a JSON document with its
    headers, or `raw` bytes sent as they are (the ingress's HTML page, a status cut off
    half-way), with no headers of fal's."""

    code: int
    document: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "text/html"


REQUEST_NOT_FOUND = Answer(404, {"detail": "Request not found"})


@dataclass(eq=False)
class QueueAnswers:
    queue: RequestQueue
    faults: Faults
    outputs: Outputs
    urls: EmulatorUrls
    stopping: threading.Event  # set when the emulator stops: a hang ends then
    run_times: random.Random = field(
        default_factory=lambda: random.Random(0),  # noqa: S311 - a repeatable spread, not secrets
        init=False,
    )

    # --- submit -----------------------------------------------------------------------

    def submit(self, body: dict[str, Any], webhook_url: str | None) -> Answer:
        prompt = str(body.get("prompt", ""))
        scope = f"submit:{prompt}"
        self.faults.arm(scope, prompt)
        refused = self._refusal(scope)
        if refused is not None:
            return refused
        hang = self.faults.hits(scope, "submit-timeout")
        slow, slow_seconds = self.faults.take(scope, "slow-run")
        queued_503 = self.faults.hits(scope, "submit-503-queued")
        bare_503 = self.faults.hits(scope, "submit-503-bare")
        request = self._new_request(body, webhook_url, prompt)
        if slow:
            request.run_seconds = float(slow_seconds or 30)
        self.faults.arm(request.request_id, prompt)
        position = self.queue.add(request)
        if hang:
            self._hang()
        if queued_503:
            return Answer(
                503, {"detail": "Upstream unavailable"}, {"x-fal-request-id": request.request_id}
            )
        if bare_503:
            return Answer(503, {"detail": "Service temporarily unavailable"})
        return Answer(200, self._queued(request, position))

    def _refusal(self, scope: str) -> Answer | None:
        """A submit answered without queueing anything."""
        if self.faults.hits(scope, "submit-429"):
            return Answer(429, {"detail": "Too many requests"})
        for code in (502, 503):
            if self.faults.hits(scope, f"submit-{code}"):
                return Answer(code, raw=NGINX_PAGE)  # the ingress answered: fal never saw it
        if self.faults.hits(scope, "submit-500-lost"):
            lost = str(uuid.uuid4())
            return Answer(500, {"detail": "Internal server error"}, {"x-fal-request-id": lost})
        return None

    def _new_request(
        self, body: dict[str, Any], webhook_url: str | None, prompt: str
    ) -> EmulatedRequest:
        request_id = str(uuid.uuid4())
        return EmulatedRequest(
            request_id=request_id,
            gateway_request_id=request_id,
            body=body,
            submitted_at=time.time(),
            run_seconds=self.queue.timing.draw_run_seconds(self.run_times),
            webhook_url=webhook_url,
            faults=fault_names(prompt),
            seed=int(body["seed"])
            if isinstance(body.get("seed"), int)
            else random.randrange(2**31),  # noqa: S311
            validation=validate(body),
        )

    def _queued(self, request: EmulatedRequest, position: int) -> dict[str, Any]:
        return {
            "status": "IN_QUEUE",
            "request_id": request.request_id,
            "gateway_request_id": request.gateway_request_id,
            **self.urls.for_request(request.request_id),
            "logs": None,
            "metrics": {},
            "queue_position": max(0, position),
        }

    def _hang(self) -> None:
        self.stopping.wait(self.queue.timing.hang_seconds)

    # --- status -----------------------------------------------------------------------

    def status(self, request_id: str, with_logs: bool) -> Answer:
        """The status answer, as the status-timeout, -malformed and -truncated faults serve it."""
        if self.faults.hits(request_id, "status-timeout"):
            self._hang()
        answer = self._status(request_id, with_logs)
        if self.faults.hits(request_id, "status-malformed"):
            return Answer(200, raw=b"<html>502 Bad Gateway</html>")
        if self.faults.hits(request_id, "status-truncated"):
            text = json.dumps(answer.document).encode()
            return Answer(200, raw=text[: len(text) // 2], content_type="application/json")
        return answer

    def _status(self, request_id: str, with_logs: bool) -> Answer:
        with self.queue.lock:
            request = self.queue.find(request_id)
            if request is None:
                return REQUEST_NOT_FOUND
            request.status_polls += 1
            for name, code in (("status-429", 429), ("status-502", 502)):
                if self.faults.hits(request_id, name):
                    return Answer(code, {"detail": "try again"})
            return self._current(request, with_logs)

    def stream_event(self, request_id: str, with_logs: bool, *, opened: bool = False) -> Answer:
        """The status as the status stream sends it (`opened`: the stream's first event,
        counted as one request); no status fault applies."""
        with self.queue.lock:
            request = self.queue.find(request_id)
            if request is None:
                return REQUEST_NOT_FOUND
            request.status_streams += opened
            return self._current(request, with_logs)

    def _current(self, request: EmulatedRequest, with_logs: bool) -> Answer:
        """(under the lock) The request's status now, as the status endpoint answers it."""
        now = time.time()
        self.queue.advance(request, now)
        if request.status == "IN_QUEUE":
            ahead = self.queue.queued_before(request)
            return Answer(
                202, {"status": "IN_QUEUE", "queue_position": ahead, **self._named(request)}
            )
        if request.status == "IN_PROGRESS":
            logs = _progress_logs(request, now) if with_logs else None
            return Answer(202, {"status": "IN_PROGRESS", "logs": logs, **self._named(request)})
        return Answer(200, self._completed(request))

    def _named(self, request: EmulatedRequest) -> dict[str, Any]:
        return {"request_id": request.request_id, **self.urls.for_request(request.request_id)}

    def _completed(self, request: EmulatedRequest) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "status": "COMPLETED",
            "logs": None,
            "request_id": request.request_id,
            "metrics": {"inference_time": request.model_seconds},
            **self.urls.for_request(request.request_id),
        }
        if "loose-fields" in request.faults:
            # fal sends null here, never leaves the key out (its client reads data["logs"]).
            answer["metrics"] = None
        if request.error:
            answer.update(error=request.error, error_type=request.error_type)
        return answer

    # --- result -----------------------------------------------------------------------

    def result(self, request_id: str, *, fetched: bool = True) -> Answer:
        """The result; `fetched` False: as a webhook carries it (not a fetch, no result-404)."""
        with self.queue.lock:
            request = self.queue.find(request_id)
            if request is None or (fetched and self.faults.hits(request_id, "result-404")):
                return REQUEST_NOT_FOUND
            request.result_fetches += fetched
            self.queue.advance(request, time.time())
            if request.status != "COMPLETED":
                return Answer(400, {"detail": "Request is still in progress"})
        if not request.error:
            self.outputs.render(request)
        with self.queue.lock:
            return _result(request)

    # --- cancel -----------------------------------------------------------------------

    def cancel(self, request_id: str) -> Answer:
        with self.queue.lock:
            request = self.queue.find(request_id)
            if request is None or self.faults.hits(request_id, "cancel-404"):
                return Answer(404, {"status": "NOT_FOUND"})
            now = time.time()
            self.queue.advance(request, now)
            if request.status == "COMPLETED":
                return Answer(400, {"status": "ALREADY_COMPLETED"})
            if request.status == "IN_PROGRESS":
                # A runner has it: fal only sends a signal, and this model finishes anyway.
                request.cancel_requested = True
                return Answer(202, {"status": "CANCELLATION_REQUESTED"})
            ok = self.faults.hits(request_id, "cancel-ok")
            self.queue.cancel(request, now)
            if ok:
                return Answer(200, {"status": "OK"})
            return Answer(202, {"status": "CANCELLATION_REQUESTED"})


def _progress_logs(request: EmulatedRequest, now: float) -> list[dict[str, Any]]:
    started = time.gmtime(request.started_at or now)
    return [
        {"message": "Generating images", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", started)}
    ]


def _result(request: EmulatedRequest) -> Answer:
    """(under the lock) A completed request's result: its outputs, or its error."""
    if request.validation:
        return Answer(422, {"detail": request.validation})
    if request.error:
        kind = {"x-fal-error-type": request.error_type or "runner_error"}
        return Answer(500, {"detail": request.error, "error_type": request.error_type}, kind)
    nsfw = "nsfw" in request.faults
    loose = "loose-fields" in request.faults
    return Answer(
        200,
        {
            "images": request.outputs,
            "timings": None if loose else {"inference": request.model_seconds},
            "seed": request.seed,
            "has_nsfw_concepts": None if loose else [nsfw] * len(request.outputs or []),
            "prompt": request.body.get("prompt"),
        },
    )

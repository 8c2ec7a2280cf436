"""An emulator of fal's queue API for FLUX.1 Kontext [max], on 127.0.0.1.

It speaks the protocol in docs/fal-queue.md: submit -> IN_QUEUE
(queue_position) -> IN_PROGRESS (logs) -> COMPLETED, status 202/200, response URLs under
the owner/app only, hosted output files, cancel, COMPLETED-with-error plus a 422 result for
bad requests, and signed webhooks (Ed25519, with a JWKS of its own). The output is a real
edit made with Pillow from the input and the prompt. Status is a function of the clock,
so nothing sleeps to move a request along; outputs are rendered once, when first needed.

Used by `make demo`, the integration tests and the benchmarks; it imports nothing from
the rest of the package.

Fault modes, chosen per request by a marker in the prompt, `[fault:NAME]`, `[fault:NAME*N]`
(the first N matching calls fail, then it behaves) or `[fault:NAME=V]`, or for the next
calls by `inject_fault(NAME, times=N)`:

| fault | effect |
|---|---|
| submit-429 | submit answers 429 in fal's JSON (nothing is queued) |
| submit-502, submit-503 | the ingress answers: nginx page, no `x-fal-request-id`; nothing queued |
| submit-503-queued | the request is queued; the answer is a 503 naming it (`x-fal-request-id`) |
| submit-500-lost | a 500 naming a request id the queue never kept |
| submit-503-bare | the request is queued; the answer is a 503 in JSON naming no request |
| submit-timeout | submit is queued but answered only after `hang_seconds` |
| status-429, status-502 | status answers 429 / 502 |
| status-timeout | status answers after `hang_seconds` |
| status-malformed, status-truncated | status answers 200 with HTML / with half its JSON |
| loose-fields | null `metrics`, `logs`, `timings`, `has_nsfw_concepts` (as fal may send them) |
| model-error | COMPLETED with an error; result 500 with `error_type` and `X-Fal-Error-Type` |
| validation-error | COMPLETED with an error; result 422 with a detail list |
| result-404 | result answers 404 (expired, as fal's are after an hour, or minutes when large) |
| stuck-in-queue | never leaves IN_QUEUE (until cancelled) |
| slow-run=S | the run takes S seconds (a cancel meanwhile is only a request: it still completes) |
| output-403 | hosted files answer 403 |
| output-not-image | hosted files are HTML |
| output-truncated | hosted files declare more bytes than they send |
| output-huge=MB | hosted files are padded to MB megabytes (streamed) |
| output-redirect | hosted files answer 302 to themselves on the same origin once (then serve) |
| output-redirect-offsite | hosted files answer 302 to the same file on `localhost` (another host) |
| output-redirect-loop | hosted files always answer 302 to themselves |
| nsfw | has_nsfw_concepts all true |
| cancel-404 | cancel answers 404 |
| cancel-ok | cancel answers 200 `{"status": "OK"}` |
| webhook-duplicate | the webhook is sent twice |
| webhook-forged | a webhook with a bad signature comes first |
| webhook-late | the webhook comes `webhook_late_seconds` late |
| webhook-stale | the webhook's timestamp is 10 minutes old |
| webhook-none | no webhook is sent |
| webhook-gateway-id | fal retried it: `gateway_request_id` differs and the header carries it |
| webhook-payload-error | the OK webhook has `payload: null` and a `payload_error` |
| webhook-dropped | deliveries fail (`*N`: the first N), and are retried on fal's schedule |

With `EmulatorTiming(concurrency=N)` (`--concurrency N`) at most N requests run at once,
as fal limits them per key; the rest wait IN_QUEUE in submit order, with their true queue
positions, and each starts when a runner frees up.

As fal does: every answer about a request carries `x-fal-request-id`; the submit answer
carries `gateway_request_id`; cancelling a request that is running is only a request (it
still completes); an ERROR webhook carries the detail in `payload`; webhooks are retried
10 times over 2 hours, on a schedule scaled by `webhook_time_scale`; `data:` inputs over
10 MB encoded fail to load.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import heapq
import io
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FAULT_MARKER = re.compile(r"\[fault:([a-z0-9-]+)(?:=([0-9.]+))?(?:\*(\d+))?\]")
ASPECT_RATIOS = {
    "21:9": 21 / 9,
    "16:9": 16 / 9,
    "4:3": 4 / 3,
    "3:2": 3 / 2,
    "1:1": 1.0,
    "2:3": 2 / 3,
    "3:4": 3 / 4,
    "9:16": 9 / 16,
    "9:21": 9 / 21,
}
COLOURS = {
    "red": (220, 40, 40),
    "blue": (40, 90, 220),
    "green": (40, 170, 70),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "teal": (30, 160, 160),
    "gold": (212, 175, 55),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
}
MAX_SIDE = 1024
USER_ID = "emulator-user"
CHUNK = 256 * 1024
# fal retries a webhook 10 times over 2 hours; doubling from ~7 s spans that (7 s ... 1 h).
WEBHOOK_RETRY_DELAYS = tuple(7200 / 1023 * 2**attempt for attempt in range(10))
# What fal's maintainers report inline inputs failing above (encoded size).
MAX_INLINE_INPUT_BYTES = 10 * 1024 * 1024
NGINX_PAGE = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    b"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class EmulatorTiming:
    queue_seconds: float = 0.2
    run_seconds: float = 0.5
    # A real model's run time varies; each request's is drawn from run_seconds ± this
    # fraction (0: every run takes exactly run_seconds).
    run_spread: float = 0.0
    # fal runs only a few requests per key at once (2 for a new account, up to ~40); the
    # rest wait IN_QUEUE, in order. None: every request starts after queue_seconds.
    concurrency: int | None = None

    def draw_run_seconds(self, rng: random.Random) -> float:
        return self.run_seconds * (1 + rng.uniform(-self.run_spread, self.run_spread))


@dataclass
class EmulatedRequest:
    request_id: str
    body: dict[str, Any]
    submitted_at: float
    started_at: float | None = None
    completed_at: float | None = None
    status: str = "IN_QUEUE"
    cancelled: bool = False
    cancel_requested: bool = False
    gateway_request_id: str = ""
    result_fetches: int = 0
    webhook_attempts: list[float] = field(default_factory=list)
    error: str | None = None
    webhook_url: str | None = None
    faults: tuple[str, ...] = ()
    model_seconds: float = 0.0
    run_seconds: float = 0.0
    status_polls: int = 0
    webhook_deliveries: int = 0
    error_type: str | None = None
    validation: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] | None = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    seed: int = 0


class _Countdown:
    """Fault counters: a marker `*N` (or inject_fault times=N) fails N calls, then stops."""

    def __init__(self) -> None:
        self._left: dict[tuple[str, str], int | None] = {}
        self._values: dict[tuple[str, str], str | None] = {}

    def arm(self, scope: str, prompt: str) -> None:
        for name, value, times in FAULT_MARKER.findall(prompt):
            key = (scope, name)
            if key not in self._left:
                self._left[key] = int(times) if times else None
                self._values[key] = value or None

    def take(self, scope: str, name: str) -> tuple[bool, str | None]:
        key = (scope, name)
        if key not in self._left:
            return False, None
        left = self._left[key]
        if left is not None:
            if left <= 0:
                return False, None
            self._left[key] = left - 1
        return True, self._values.get(key)


class FalQueueEmulator:
    def __init__(
        self,
        *,
        model_path: str = "fal-ai/flux-pro/kontext/max",
        timing: EmulatorTiming = EmulatorTiming(),
        api_key: str | None = None,
        auth_header: str = "Authorization",
        auth_scheme: str = "Key",
        fetch_input: Callable[[str], bytes] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        hang_seconds: float = 3.0,
        webhook_retries: int = len(WEBHOOK_RETRY_DELAYS),
        webhook_late_seconds: float = 1.0,
        webhook_time_scale: float = 0.001,
    ) -> None:
        self.model_path = model_path.strip("/")
        self.owner_app = "/".join(self.model_path.split("/")[:2])
        self.timing = timing
        self._expected_auth = f"{auth_scheme} {api_key}".strip() if api_key else None
        self._auth_header = auth_header
        self._fetch_input = fetch_input
        self._hang_seconds = hang_seconds
        self._webhook_retries = webhook_retries
        self._webhook_late_seconds = webhook_late_seconds
        # fal's retry schedule (2 hours) times this factor: 0.001 spans 7.2 s.
        self.webhook_time_scale = webhook_time_scale
        self._requests: dict[str, EmulatedRequest] = {}
        self._order: list[str] = []
        # With a concurrency limit: requests waiting for a runner, in order, and the runs
        # holding one (completion time, sequence, request id).
        self._waiting: collections.deque[str] = collections.deque()
        self._running: list[tuple[float, int, str]] = []
        self._slot_freed_at = 0.0
        self._auth_seen: list[str] = []
        self._faults = _Countdown()
        self._injected: dict[str, int] = {}
        self._lock = threading.RLock()
        self._run_times = random.Random(0)  # noqa: S311 - a repeatable spread, not secrets
        self._render_lock = threading.Lock()
        self._stopping = threading.Event()
        # due, seq, request id, kind, attempt
        self._webhooks: list[tuple[float, int, str, str, int]] = []
        self._webhook_wake = threading.Condition(self._lock)
        self._sequence = 0
        self._signing_key = Ed25519PrivateKey.generate()
        self._kid = uuid.uuid4().hex[:12]
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []
        self._started = False

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> FalQueueEmulator:
        with self._lock:
            if self._started:
                return self
            self._started = True
        for target in (self._serve, self._send_webhooks):
            thread = threading.Thread(
                target=target, daemon=True, name=f"emulator-{target.__name__}"
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._webhook_wake:
            self._webhook_wake.notify_all()
        if self._started:
            self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FalQueueEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    # --- inspection -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    @property
    def submit_count(self) -> int:
        with self._lock:
            return len(self._order)

    def requests(self) -> list[EmulatedRequest]:
        with self._lock:
            return [replace(self._requests[rid]) for rid in self._order]

    def get(self, request_id: str) -> EmulatedRequest:
        with self._lock:
            request = self._requests[request_id]
            self._advance(request, time.time())
            return replace(request)

    def auth_headers_seen(self) -> list[str]:
        with self._lock:
            return list(self._auth_seen)

    def inject_fault(self, fault: str, *, times: int = 1) -> None:
        with self._lock:
            self._injected[fault] = self._injected.get(fault, 0) + times

    def jwks(self) -> dict[str, Any]:
        raw = self._signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": x,
                    "kid": self._kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
            ]
        }

    # --- faults -----------------------------------------------------------------------

    def _fault(self, scope: str, name: str) -> tuple[bool, str | None]:
        with self._lock:
            if self._injected.get(name, 0) > 0:
                self._injected[name] -= 1
                return True, None
            return self._faults.take(scope, name)

    # --- the queue --------------------------------------------------------------------

    def _submit(self, body: dict[str, Any], webhook_url: str | None) -> tuple[int, Any]:
        prompt = str(body.get("prompt", ""))
        scope = f"submit:{prompt}"
        with self._lock:
            self._faults.arm(scope, prompt)
        if self._fault(scope, "submit-429")[0]:
            return 429, {"detail": "Too many requests"}
        for code in (502, 503):
            if self._fault(scope, f"submit-{code}")[0]:
                return code, NGINX_PAGE  # the ingress answered: fal never saw the request
        if self._fault(scope, "submit-500-lost")[0]:
            lost = str(uuid.uuid4())
            return 500, ({"detail": "Internal server error"}, {"x-fal-request-id": lost})
        hang = self._fault(scope, "submit-timeout")[0]
        slow, slow_seconds = self._fault(scope, "slow-run")
        queued_503 = self._fault(scope, "submit-503-queued")[0]
        bare_503 = self._fault(scope, "submit-503-bare")[0]
        request_id = str(uuid.uuid4())
        request = EmulatedRequest(
            request_id=request_id,
            gateway_request_id=request_id,
            body=body,
            submitted_at=time.time(),
            run_seconds=self.timing.draw_run_seconds(self._run_times),
            webhook_url=webhook_url,
            faults=tuple(name for name, _, _ in FAULT_MARKER.findall(prompt)),
            seed=int(body["seed"])
            if isinstance(body.get("seed"), int)
            else random.randrange(2**31),  # noqa: S311
        )
        request.validation = _validate(body)
        if slow:
            request.run_seconds = float(slow_seconds or 30)
        with self._lock:
            self._faults.arm(request_id, prompt)
            self._requests[request_id] = request
            self._order.append(request_id)
            if "stuck-in-queue" not in request.faults:
                self._waiting.append(request_id)
            position = self._queued_before(request)
            if webhook_url:
                self._schedule_webhook(request)
        if hang:
            self._sleep(self._hang_seconds)
        if queued_503:
            return 503, ({"detail": "Upstream unavailable"}, {"x-fal-request-id": request_id})
        if bare_503:
            return 503, {"detail": "Service temporarily unavailable"}
        urls = self._urls(request_id)
        return 200, {
            "status": "IN_QUEUE",
            "request_id": request_id,
            "gateway_request_id": request.gateway_request_id,
            **urls,
            "logs": None,
            "metrics": {},
            "queue_position": max(0, position),
        }

    def _urls(self, request_id: str) -> dict[str, str]:
        base = f"{self.base_url}/{self.owner_app}/requests/{request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _queued_before(self, request: EmulatedRequest) -> int:
        """(under the lock) How many earlier requests are still waiting to start."""
        now = time.time()
        if self.timing.concurrency is not None:
            self._advance_queue(now)
            ahead = 0
            for request_id in self._waiting:
                if request_id == request.request_id:
                    return ahead
                ahead += self._requests[request_id].status == "IN_QUEUE"
            return ahead  # a stuck request waits behind everyone
        ahead = 0
        for other in self._requests.values():
            if other.submitted_at < request.submitted_at:
                self._advance(other, now)
                ahead += other.status == "IN_QUEUE"
        return ahead

    def _completion_time(self, request: EmulatedRequest) -> float | None:
        if "stuck-in-queue" in request.faults and not request.cancelled:
            return None
        if self.timing.concurrency is not None:
            # Known only once a runner takes it; its webhook is scheduled then (_start_run).
            return None
        return request.submitted_at + self.timing.queue_seconds + request.run_seconds

    def _advance(self, request: EmulatedRequest, now: float) -> None:
        """Move a request along the clock (called under the lock)."""
        if self.timing.concurrency is not None:
            self._advance_queue(now)
            return
        if request.status == "COMPLETED":
            return
        if "stuck-in-queue" in request.faults:
            return
        start = request.submitted_at + self.timing.queue_seconds
        if now >= start and request.started_at is None:
            request.started_at = start
            request.status = "IN_PROGRESS"
        done = self._completion_time(request)
        if done is not None and now >= done:
            request.status = "COMPLETED"
            request.completed_at = done
            request.model_seconds = request.run_seconds
            self._settle_errors(request)

    def _advance_queue(self, now: float) -> None:
        """(under the lock) Replay the per-key runners up to `now`, in time order.

        A waiting request starts once it is `queue_seconds` old and a runner is free (at the
        later of the two), in submit order; a run holds its runner until it completes, even
        when a cancel was asked for (fal only signals a running request).
        """
        limit = max(1, self.timing.concurrency or 1)
        while True:
            head = self._next_waiting()
            if head is not None and len(self._running) < limit:
                ready = head.submitted_at + self.timing.queue_seconds
                if ready <= now:
                    self._waiting.popleft()
                    self._start_run(head, max(ready, self._slot_freed_at))
                    continue
            if self._running and self._running[0][0] <= now:
                done, _, request_id = heapq.heappop(self._running)
                self._slot_freed_at = done
                self._finish_run(self._requests[request_id], done)
                continue
            return

    def _next_waiting(self) -> EmulatedRequest | None:
        # Requests cancelled while they waited leave the line here.
        while self._waiting:
            request = self._requests[self._waiting[0]]
            if request.status == "IN_QUEUE":
                return request
            self._waiting.popleft()
        return None

    def _start_run(self, request: EmulatedRequest, started_at: float) -> None:
        request.started_at, request.status = started_at, "IN_PROGRESS"
        self._sequence += 1
        done = started_at + request.run_seconds
        heapq.heappush(self._running, (done, self._sequence, request.request_id))
        if request.webhook_url:
            self._schedule_webhook(request, due=done)

    def _finish_run(self, request: EmulatedRequest, done: float) -> None:
        if request.status == "COMPLETED":
            return
        request.status, request.completed_at = "COMPLETED", done
        request.model_seconds = request.run_seconds
        self._settle_errors(request)

    def _settle_errors(self, request: EmulatedRequest) -> None:
        if request.validation:
            request.error, request.error_type = "Request validation failed", "validation_error"
        elif "validation-error" in request.faults:
            request.validation = [
                {
                    "loc": ["body", "prompt"],
                    "msg": "prompt rejected by policy",
                    "type": "value_error",
                }
            ]
            request.error, request.error_type = "Request validation failed", "validation_error"
        elif "model-error" in request.faults:
            request.error, request.error_type = "Model crashed", "model_error"

    def _status(self, request_id: str, with_logs: bool) -> tuple[int, Any]:
        with self._lock:
            request = self._requests.get(request_id)
            if request is None:
                return 404, {"detail": "Request not found"}
            request.status_polls += 1
            now = time.time()
            self._advance(request, now)
            for name, code in (("status-429", 429), ("status-502", 502)):
                if self._fault(request_id, name)[0]:
                    return code, {"detail": "try again"}
            urls = self._urls(request_id)
            if request.status == "IN_QUEUE":
                ahead = self._queued_before(request)
                return 202, {
                    "status": "IN_QUEUE",
                    "queue_position": ahead,
                    "request_id": request_id,
                    **urls,
                }
            if request.status == "IN_PROGRESS":
                logs = [
                    {
                        "message": "Generating images",
                        "timestamp": time.strftime(
                            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(request.started_at or now)
                        ),
                    }
                ]
                return 202, {
                    "status": "IN_PROGRESS",
                    "logs": logs if with_logs else None,
                    "request_id": request_id,
                    **urls,
                }
            answer: dict[str, Any] = {
                "status": "COMPLETED",
                "logs": None,
                "request_id": request_id,
                "metrics": {"inference_time": request.model_seconds},
                **urls,
            }
            if "loose-fields" in request.faults:
                answer["metrics"] = None
                del answer["logs"]
            if request.error:
                answer.update(error=request.error, error_type=request.error_type)
            return 200, answer

    def _result(self, request_id: str, *, fetched: bool = True) -> tuple[int, Any]:
        with self._lock:
            request = self._requests.get(request_id)
            if request is None or (fetched and self._fault(request_id, "result-404")[0]):
                return 404, {"detail": "Request not found"}
            request.result_fetches += fetched
            self._advance(request, time.time())
            if request.status != "COMPLETED":
                return 400, {"detail": "Request is still in progress"}
        if not request.error:
            self._render(request)
        with self._lock:
            if request.validation:
                return 422, {"detail": request.validation}
            if request.error:
                kind = {"x-fal-error-type": request.error_type or "runner_error"}
                return 500, ({"detail": request.error, "error_type": request.error_type}, kind)
            nsfw = "nsfw" in request.faults
            loose = "loose-fields" in request.faults
            return 200, {
                "images": request.outputs,
                "timings": None if loose else {"inference": request.model_seconds},
                "seed": request.seed,
                "has_nsfw_concepts": None if loose else [nsfw] * len(request.outputs or []),
                "prompt": request.body.get("prompt"),
            }

    def _cancel(self, request_id: str) -> tuple[int, Any]:
        with self._lock:
            request = self._requests.get(request_id)
            if request is None or self._fault(request_id, "cancel-404")[0]:
                return 404, {"status": "NOT_FOUND"}
            now = time.time()
            self._advance(request, now)
            if request.status == "COMPLETED":
                return 400, {"status": "ALREADY_COMPLETED"}
            if request.status == "IN_PROGRESS":
                # A runner has it: fal only sends a signal, and this model finishes anyway.
                request.cancel_requested = True
                return 202, {"status": "CANCELLATION_REQUESTED"}
            ok = self._fault(request_id, "cancel-ok")[0]
            request.cancelled = True
            request.model_seconds = (
                max(0.0, now - request.started_at) if request.started_at else 0.0
            )
            request.status, request.completed_at = "COMPLETED", now
            request.error, request.error_type = "Request cancelled", "cancelled"
            if request.webhook_url:
                self._schedule_webhook(request, due=now)
            return (200, {"status": "OK"}) if ok else (202, {"status": "CANCELLATION_REQUESTED"})

    # --- outputs ----------------------------------------------------------------------

    def _render(self, request: EmulatedRequest) -> None:
        with self._render_lock:
            if request.outputs is not None or request.error:
                return
            try:
                source = self._load_input(str(request.body.get("image_url", "")))
            except Exception as exc:  # any fetch or decode failure is the model's input error
                with self._lock:
                    request.validation = [
                        {
                            "loc": ["body", "image_url"],
                            "type": "image_load_error",
                            "msg": f"Could not load image from image_url: {exc}",
                        }
                    ]
                    request.error, request.error_type = (
                        "Image could not be loaded",
                        "image_load_error",
                    )
                return
            images = _edit(source, request.body, request.seed)
            outputs, files = [], {}
            fmt = "png" if request.body.get("output_format") == "png" else "jpeg"
            content_type = f"image/{fmt}"
            for index, image in enumerate(images):
                buffer = io.BytesIO()
                image.save(buffer, "PNG" if fmt == "png" else "JPEG", quality=90)
                data = buffer.getvalue()
                name = f"{index}.{'png' if fmt == 'png' else 'jpg'}"
                files[name] = (content_type, data)
                url = (
                    f"data:{content_type};base64,{base64.b64encode(data).decode()}"
                    if request.body.get("sync_mode") is True
                    else f"{self.base_url}/files/{request.request_id}/{name}"
                )
                outputs.append(
                    {
                        "url": url,
                        "width": image.width,
                        "height": image.height,
                        "content_type": content_type,
                        "file_name": name,
                        "file_size": len(data),
                    }
                )
            with self._lock:
                request.files, request.outputs = files, outputs

    def _load_input(self, url: str) -> Any:
        from PIL import Image  # noqa: PLC0415 - Pillow only where images are made

        if url.startswith("data:"):
            if len(url) > MAX_INLINE_INPUT_BYTES:
                raise ValueError(f"inline data: URI of {len(url)} bytes is too large")
            data = base64.b64decode(url.split(",", 1)[1])
        elif self._fetch_input is not None:
            data = self._fetch_input(url)
        else:
            response = httpx.get(url, timeout=httpx.Timeout(10.0, connect=2.0))
            response.raise_for_status()
            data = response.content
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")

    def _file(  # noqa: PLR0911 - one return per kind of answer
        self, request_id: str, name: str, redirected: bool = False
    ) -> tuple[int, str, Any, int | None, str | None]:
        """(status, content type, body chunks or bytes, declared length, Location)."""
        with self._lock:
            request = self._requests.get(request_id)
            if request is None or name not in request.files:
                return 404, "application/json", b'{"detail": "Not found"}', None, None
            if self._fault(request_id, "output-403")[0]:
                return 403, "application/xml", b"<Error>AccessDenied</Error>", None, None
            if self._fault(request_id, "output-not-image")[0]:
                page = b"<html><body>Sign in to continue</body></html>"
                return 200, "text/html", page, None, None
            redirect = self._redirect(request_id, name, redirected)
            if redirect:
                return 302, "text/html", b"<html>Found</html>", None, redirect
            content_type, data = request.files[name]
            truncated = self._fault(request_id, "output-truncated")[0]
            huge, megabytes = self._fault(request_id, "output-huge")
        if truncated:
            return 200, content_type, data[: len(data) // 2], len(data), None
        if huge:
            total = max(len(data), int(float(megabytes or 50) * 1024 * 1024))
            return 200, content_type, _padded(data, total), total, None
        return 200, content_type, data, len(data), None

    def _redirect(self, request_id: str, name: str, redirected: bool) -> str | None:
        """(under the lock) Where a redirect fault sends a file request, if one applies."""
        path = f"/files/{request_id}/{name}"
        if self._fault(request_id, "output-redirect-loop")[0]:
            return f"{self.base_url}{path}?hop={uuid.uuid4().hex[:6]}"
        if self._fault(request_id, "output-redirect-offsite")[0]:
            port = self._server.server_address[1]
            return f"http://localhost:{port}{path}"
        if not redirected and self._fault(request_id, "output-redirect")[0]:
            return f"{self.base_url}{path}?redirected=1"
        return None

    # --- webhooks ---------------------------------------------------------------------

    def _schedule_webhook(self, request: EmulatedRequest, due: float | None = None) -> None:
        """(under the lock) Queue the completion webhook for when the request completes."""
        if "webhook-none" in request.faults:
            return
        when = due if due is not None else self._completion_time(request)
        if when is None:
            return
        if "webhook-late" in request.faults:
            when += self._webhook_late_seconds
        kinds = ["real"]
        if "webhook-forged" in request.faults:
            kinds = ["forged", "real"]
        if "webhook-duplicate" in request.faults:
            kinds = ["real", "real"]
        for kind in kinds:
            self._push_webhook(when, request.request_id, kind, 0)

    def _push_webhook(self, when: float, request_id: str, kind: str, attempt: int) -> None:
        """(under the lock) One delivery attempt, due at `when`."""
        self._sequence += 1
        heapq.heappush(self._webhooks, (when, self._sequence, request_id, kind, attempt))
        self._webhook_wake.notify_all()

    def _send_webhooks(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as http:
            while not self._stopping.is_set():
                with self._webhook_wake:
                    if self.timing.concurrency is not None:
                        # Nobody polls a webhook-mode job: start waiting runs here.
                        self._advance_queue(time.time())
                    if not self._webhooks:
                        self._webhook_wake.wait(timeout=0.5)
                        continue
                    due, _, request_id, kind, attempt = self._webhooks[0]
                    wait = due - time.time()
                    if wait > 0:
                        self._webhook_wake.wait(timeout=min(wait, 0.5))
                        continue
                    heapq.heappop(self._webhooks)
                    request = self._requests[request_id]
                    self._advance(request, time.time())
                if request.status == "COMPLETED" and not request.error:
                    self._render(request)
                if not self._deliver(http, request, kind) and attempt < self._webhook_retries:
                    # Not delivered: again on fal's schedule (10 times over 2 hours), scaled.
                    delay = WEBHOOK_RETRY_DELAYS[attempt] * self.webhook_time_scale
                    with self._webhook_wake:
                        self._push_webhook(time.time() + delay, request_id, kind, attempt + 1)

    def _webhook_body(self, request: EmulatedRequest) -> tuple[str, bytes]:
        """The header's request id and the body, as fal sends them."""
        status_code, answer = (
            self._result(request.request_id, fetched=False)
            if not request.cancelled
            else (500, {"detail": request.error})
        )
        payload = answer[0] if isinstance(answer, tuple) else answer
        ok = status_code == 200
        with self._lock:
            if "webhook-gateway-id" in request.faults and (
                request.gateway_request_id == request.request_id
            ):
                request.gateway_request_id = str(uuid.uuid4())  # fal retried it internally
            gateway = request.gateway_request_id or request.request_id
        document: dict[str, Any] = {
            "request_id": request.request_id,
            "gateway_request_id": gateway,
            "status": "OK" if ok else "ERROR",
            # An ERROR webhook carries the model's detail (a 422's list, say) in payload.
            "payload": payload,
            "payload_error": None,
        }
        if not ok:
            document["error"] = f"Invalid status code: {status_code}"
        elif "webhook-payload-error" in request.faults:
            document["payload"] = None
            document["payload_error"] = "Payload too large to include in the webhook"
        return gateway, json.dumps(document).encode()

    def _deliver(self, http: httpx.Client, request: EmulatedRequest, kind: str) -> bool:
        """One delivery attempt; True when it is done (delivered, or a forgery sent)."""
        if self._stopping.is_set():
            return True
        header_id, body = self._webhook_body(request)
        with self._lock:
            request.webhook_attempts.append(time.time())
        if self._fault(request.request_id, "webhook-dropped")[0]:
            return False  # lost on the way, as if the receiver had been down
        timestamp = int(time.time()) - (600 if "webhook-stale" in request.faults else 0)
        key = Ed25519PrivateKey.generate() if kind == "forged" else self._signing_key
        headers = sign_webhook(key, header_id, USER_ID, str(timestamp), body)
        headers["Content-Type"] = "application/json"
        with self._lock:
            request.webhook_deliveries += 1
        try:
            answer = http.post(str(request.webhook_url), content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return answer.status_code < 300 or kind == "forged"

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # --- HTTP -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                emulator._route(self, "POST")

            def do_GET(self) -> None:
                emulator._route(self, "GET")

            def do_PUT(self) -> None:
                emulator._route(self, "PUT")

        return Handler

    def _route(self, handler: BaseHTTPRequestHandler, method: str) -> None:  # noqa: PLR0911
        parts = urlsplit(handler.path)
        path = parts.path.strip("/")
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if method == "GET" and path == ".well-known/jwks.json":
            return _send_json(handler, 200, self.jwks())
        if method == "GET" and path.startswith("files/"):
            _, request_id, name = [*path.split("/", 2), "", ""][:3]
            redirected = "redirected=1" in parts.query
            return _send_file(handler, *self._file(request_id, name, redirected))
        presented = handler.headers.get(self._auth_header)
        if presented is not None:
            with self._lock:
                self._auth_seen.append(presented)
        if self._expected_auth and presented != self._expected_auth:
            return _send_json(handler, 401, {"detail": "Invalid or missing API key"})
        prefix = f"{self.owner_app}/requests/"
        if method == "POST" and path == self.model_path:
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return _send_json(
                    handler,
                    422,
                    {"detail": [{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}]},
                )
            webhook = parse_qs(parts.query).get("fal_webhook", [None])[0]
            return _reply(handler, *self._submit(body if isinstance(body, dict) else {}, webhook))
        if path.startswith(prefix):
            request_id, _, action = path[len(prefix) :].partition("/")
            if method == "GET" and action == "status":
                return self._send_status(handler, request_id, "logs=1" in parts.query)
            if method == "GET" and action == "":
                return _reply(handler, *self._result(request_id), request_id=request_id)
            if method == "PUT" and action == "cancel":
                return _reply(handler, *self._cancel(request_id), request_id=request_id)
        return _send_json(handler, 404, {"detail": f"Path /{path} not found"})

    def _send_status(self, handler: BaseHTTPRequestHandler, request_id: str, logs: bool) -> None:
        if self._fault(request_id, "status-timeout")[0]:
            self._sleep(self._hang_seconds)
        code, answer = self._status(request_id, logs)
        if self._fault(request_id, "status-malformed")[0]:
            return _send_bytes(handler, 200, "text/html", b"<html>502 Bad Gateway</html>")
        if self._fault(request_id, "status-truncated")[0]:
            text = json.dumps(answer).encode()
            return _send_bytes(handler, 200, "application/json", text[: len(text) // 2])
        return _reply(handler, code, answer, request_id=request_id)


def sign_webhook(
    key: Ed25519PrivateKey, request_id: str, user_id: str, timestamp: str, body: bytes
) -> dict[str, str]:
    """fal's webhook signature headers for a body."""
    message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()))
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": timestamp,
        "X-Fal-Webhook-Signature": key.sign(message.encode()).hex(),
    }


def _validate(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's own checks, as 422 detail items."""
    problems = []

    def problem(name: str, msg: str) -> None:
        problems.append({"loc": ["body", name], "msg": msg, "type": "value_error"})

    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        problem("prompt", "field required")
    image_url = body.get("image_url")
    if not isinstance(image_url, str) or not image_url.startswith(("http://", "https://", "data:")):
        problem("image_url", "must be an http(s) URL or a data URI")
    if body.get("output_format", "jpeg") not in ("jpeg", "png"):
        problem("output_format", "must be 'jpeg' or 'png'")
    num = body.get("num_images", 1)
    if not isinstance(num, int) or isinstance(num, bool) or not 1 <= num <= 4:
        problem("num_images", "ensure this value is between 1 and 4")
    guidance = body.get("guidance_scale", 3.5)
    if not isinstance(guidance, int | float) or not 1 <= guidance <= 20:
        problem("guidance_scale", "ensure this value is between 1 and 20")
    if "seed" in body and (not isinstance(body["seed"], int) or isinstance(body["seed"], bool)):
        problem("seed", "value is not a valid integer")
    if "safety_tolerance" in body and body["safety_tolerance"] not in tuple("123456"):
        problem("safety_tolerance", "must be one of '1'..'6'")
    if "aspect_ratio" in body and body["aspect_ratio"] not in ASPECT_RATIOS:
        problem("aspect_ratio", f"must be one of {', '.join(ASPECT_RATIOS)}")
    for flag in ("sync_mode", "enhance_prompt"):
        if flag in body and not isinstance(body[flag], bool):
            problem(flag, "value is not a valid boolean")
    return problems


def _edit(source: Any, body: dict[str, Any], seed: int) -> list[Any]:
    """A visible, prompt-dependent edit: crop to the aspect ratio, recolour, caption."""
    from PIL import Image, ImageDraw, ImageFont, ImageOps  # noqa: PLC0415

    image = source
    ratio = ASPECT_RATIOS.get(str(body.get("aspect_ratio")))
    if ratio:
        width, height = image.size
        if width / height > ratio:
            new_width = int(height * ratio)
            image = image.crop(((width - new_width) // 2, 0, (width + new_width) // 2, height))
        else:
            new_height = int(width / ratio)
            image = image.crop((0, (height - new_height) // 2, width, (height + new_height) // 2))
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    prompt = str(body.get("prompt", ""))
    words = prompt.lower()
    if "grayscale" in words or "black and white" in words:
        image = ImageOps.grayscale(image).convert("RGB")
    elif "invert" in words:
        image = ImageOps.invert(image)
    elif "sepia" in words:
        image = ImageOps.colorize(ImageOps.grayscale(image), (60, 40, 20), (240, 220, 180))
    else:
        colour = next((rgb for name, rgb in COLOURS.items() if name in words), None)
        if colour is None:
            digest = hashlib.sha256(prompt.encode()).digest()
            colour = (digest[0], digest[1], digest[2])
        image = Image.blend(image, Image.new("RGB", image.size, colour), 0.35)
    outputs = []
    for index in range(int(body.get("num_images", 1) or 1)):
        variant = image.copy()
        draw = ImageDraw.Draw(variant)
        rng = random.Random(seed + index)  # noqa: S311 - variety, not security
        banner = max(14, variant.height // 12)
        draw.rectangle((0, variant.height - banner, variant.width, variant.height), fill=(0, 0, 0))
        draw.text(
            (6, variant.height - banner + 2),
            f"#{index + 1} {prompt[:80]}",
            fill=(255, 255, 255),
            font=ImageFont.load_default(),
        )
        radius = max(3, min(variant.size) // 10)
        x, y = rng.randrange(variant.width), rng.randrange(max(1, variant.height - banner))
        # A ring: the sample prompt asks for a donut, and a ring reads as one.
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius),
            outline=(rng.randrange(256), rng.randrange(256), rng.randrange(256)),
            width=max(2, radius // 2),
        )
        outputs.append(variant)
    return outputs


def _padded(data: bytes, total: int) -> Any:
    def chunks() -> Any:
        yield data
        left = total - len(data)
        block = b"\0" * CHUNK
        while left > 0:
            yield block[: min(CHUNK, left)]
            left -= CHUNK

    return chunks()


def _send_json(handler: BaseHTTPRequestHandler, code: int, document: Any) -> None:
    _send_bytes(handler, code, "application/json", json.dumps(document).encode())


def _reply(
    handler: BaseHTTPRequestHandler, code: int, answer: Any, *, request_id: str | None = None
) -> None:
    """A queue answer: a JSON document (optionally with headers), or the ingress's page.

    fal's own answers about a request carry `x-fal-request-id`; the ingress's do not.
    """
    headers: dict[str, str] = {}
    if isinstance(answer, tuple):
        answer, headers = answer
    if isinstance(answer, bytes):
        return _send_bytes(handler, code, "text/html", answer)
    named = answer.get("request_id") if isinstance(answer, dict) else None
    if (request_id or named) and "x-fal-request-id" not in headers:
        headers = {**headers, "x-fal-request-id": str(request_id or named)}
    return _send_bytes(handler, code, "application/json", json.dumps(answer).encode(), headers)


def _send_bytes(
    handler: BaseHTTPRequestHandler,
    code: int,
    content_type: str,
    data: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _send_file(  # noqa: PLR0917 - spreads _file's answer
    handler: BaseHTTPRequestHandler,
    code: int,
    content_type: str,
    body: Any,
    declared: int | None,
    location: str | None = None,
) -> None:
    if location:
        return _send_bytes(handler, code, content_type, body, {"Location": location})
    if isinstance(body, bytes) and declared in (None, len(body)):
        return _send_bytes(handler, code, content_type, body)
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(declared))
    handler.send_header("Connection", "close")
    handler.end_headers()
    try:
        for chunk in [body] if isinstance(body, bytes) else body:
            handler.wfile.write(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    handler.close_connection = True
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kontext-pipeline emulator", description="fal queue emulator on 127.0.0.1"
    )
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--queue-seconds", type=float, default=0.5)
    parser.add_argument("--run-seconds", type=float, default=3.0)
    parser.add_argument(
        "--run-spread", type=float, default=0.0, help="run time varies by ± this fraction"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="requests run at once per key, as fal limits them (2 for a new account); the "
        "rest wait IN_QUEUE in order (default: no limit)",
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--webhook-time-scale",
        type=float,
        default=0.001,
        help="fal retries a webhook 10 times over 2 hours; this factor scales that schedule "
        "(1 = real time; the default 0.001 spans 7.2 s)",
    )
    args = parser.parse_args(argv)
    emulator = FalQueueEmulator(
        port=args.port,
        api_key=args.api_key,
        timing=EmulatorTiming(
            args.queue_seconds, args.run_seconds, args.run_spread, args.concurrency
        ),
        webhook_time_scale=args.webhook_time_scale,
    )
    with emulator:
        print(f"fal queue emulator on {emulator.base_url} (model {emulator.model_path})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())

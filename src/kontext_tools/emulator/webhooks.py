"""Completion webhooks: scheduled for when a request completes (shaped by the webhook-*
faults), delivered from a thread of their own, and retried on fal's schedule (10 times
over 2 hours, scaled by `webhook_time_scale`) while they are not delivered."""

from __future__ import annotations

import heapq
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from kontext_tools.emulator.answers import Answer, QueueAnswers
from kontext_tools.emulator.faults import Faults
from kontext_tools.emulator.queue import RequestQueue
from kontext_tools.emulator.request import EmulatedRequest
from kontext_tools.emulator.timing import EmulatorTiming
from kontext_tools.emulator.webhook_signing import WebhookSigner

# A delivery attempt: request id, kind ("real" or "forged"), attempt number.
Delivery = tuple[str, str, int]


class WebhookSchedule:
    """Delivery attempts in the order they fall due."""

    def __init__(self, lock: threading.RLock, timing: EmulatorTiming) -> None:
        self._timing = timing
        # due, seq, request id, kind, attempt
        self._due: list[tuple[float, int, str, str, int]] = []
        self._sequence = 0
        self.wake = threading.Condition(lock)

    def schedule(self, request: EmulatedRequest, when: float | None) -> None:
        """(under the lock) Queue the completion webhook for when the request completes."""
        if not request.webhook_url or "webhook-none" in request.faults or when is None:
            return
        if "webhook-late" in request.faults:
            when += self._timing.webhook_late_seconds
        kinds = ["real"]
        if "webhook-forged" in request.faults:
            kinds = ["forged", "real"]
        if "webhook-duplicate" in request.faults:
            kinds = ["real", "real"]
        for kind in kinds:
            self._push(when, (request.request_id, kind, 0))

    def retry(self, delivery: Delivery) -> None:
        """Again on fal's schedule (10 times over 2 hours), scaled."""
        request_id, kind, attempt = delivery
        delay = self._timing.webhook_retry_delay(attempt)
        with self.wake:
            self._push(time.time() + delay, (request_id, kind, attempt + 1))

    def pop_due(self) -> Delivery | None:
        """(under the lock) The next attempt if it is due; else waits a while for one."""
        if not self._due:
            self.wake.wait(timeout=0.5)
            return None
        due, _, request_id, kind, attempt = self._due[0]
        wait = due - time.time()
        if wait > 0:
            self.wake.wait(timeout=min(wait, 0.5))
            return None
        heapq.heappop(self._due)
        return request_id, kind, attempt

    def wake_all(self) -> None:
        with self.wake:
            self.wake.notify_all()

    def _push(self, when: float, delivery: Delivery) -> None:
        """(under the lock) One delivery attempt, due at `when`."""
        self._sequence += 1
        heapq.heappush(self._due, (when, self._sequence, *delivery))
        self.wake.notify_all()


@dataclass(eq=False)
class WebhookSender:
    queue: RequestQueue
    schedule: WebhookSchedule
    faults: Faults
    answers: QueueAnswers
    stopping: threading.Event
    signer: WebhookSigner = field(default_factory=WebhookSigner, init=False)

    def run(self) -> None:
        """Deliver what falls due until the emulator stops."""
        with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as http:
            while not self.stopping.is_set():
                due = self._next()
                if due is None:
                    continue
                request, delivery = due
                kind, attempt = delivery[1:]
                delivered = self._deliver(http, request, kind)
                if not delivered and attempt < self.queue.timing.webhook_retries:
                    self.schedule.retry(delivery)

    def _next(self) -> tuple[EmulatedRequest, Delivery] | None:
        with self.schedule.wake:
            if self.queue.timing.concurrency is not None:
                # Nobody polls a webhook-mode job: start waiting runs here.
                self.queue.advance_runners(time.time())
            delivery = self.schedule.pop_due()
            if delivery is None:
                return None
            request = self.queue[delivery[0]]
            self.queue.advance(request, time.time())
        return request, delivery

    def _deliver(self, http: httpx.Client, request: EmulatedRequest, kind: str) -> bool:
        """One delivery attempt; True when it is done (delivered, or a forgery sent)."""
        if self.stopping.is_set():
            return True
        header_id, body = self._document(request)
        with self.queue.lock:
            request.webhook_attempts.append(time.time())
        if self.faults.hits(request.request_id, "webhook-dropped"):
            return False  # lost on the way, as if the receiver had been down
        timestamp = int(time.time()) - (600 if "webhook-stale" in request.faults else 0)
        headers = self.signer.headers(header_id, str(timestamp), body, forged=kind == "forged")
        headers["Content-Type"] = "application/json"
        try:
            answer = http.post(str(request.webhook_url), content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return answer.status_code < 300 or kind == "forged"

    def _document(self, request: EmulatedRequest) -> tuple[str, bytes]:
        """The header's request id and the body, as fal sends them."""
        answer = (
            self.answers.result(request.request_id, fetched=False)
            if not request.cancelled
            else Answer(500, {"detail": request.error})
        )
        with self.queue.lock:
            if "webhook-gateway-id" in request.faults and (
                request.gateway_request_id == request.request_id
            ):
                request.gateway_request_id = str(uuid.uuid4())  # fal retried it internally
            gateway = request.gateway_request_id or request.request_id
        document: dict[str, Any] = {
            "request_id": request.request_id,
            "gateway_request_id": gateway,
            "status": "OK" if answer.code == 200 else "ERROR",
            # An ERROR webhook carries the model's detail (a 422's list, say) in payload.
            "payload": answer.document,
            "payload_error": None,
        }
        if answer.code != 200:
            document["error"] = f"Invalid status code: {answer.code}"
        elif "webhook-payload-error" in request.faults:
            document["payload"] = None
            document["payload_error"] = "Payload too large to include in the webhook"
        return gateway, json.dumps(document).encode()

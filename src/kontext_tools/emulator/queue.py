"""The queue: the requests in submit order, and the clock that moves them along.

Status is a function of the clock, so nothing sleeps to move a request along: whoever
looks at a request first moves it (and, under a concurrency limit, every runner) up to now.
"""

from __future__ import annotations

import collections
import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from kontext_tools.emulator.request import EmulatedRequest
from kontext_tools.emulator.timing import EmulatorTiming

# Told when a request will complete (its webhook is due then); None: not known yet.
DueListener = Callable[[EmulatedRequest, float | None], None]


class RequestQueue:
    def __init__(self, timing: EmulatorTiming, lock: threading.RLock, on_due: DueListener) -> None:
        self.timing = timing
        self.lock = lock
        self._on_due = on_due
        self._requests: dict[str, EmulatedRequest] = {}
        self._order: list[str] = []
        # With a concurrency limit: requests waiting for a runner, in order, and the runs
        # holding one (completion time, sequence, request id).
        self._waiting: collections.deque[str] = collections.deque()
        self._running: list[tuple[float, int, str]] = []
        self._slot_freed_at = 0.0
        self._sequence = 0

    # --- reading ----------------------------------------------------------------------

    @property
    def count(self) -> int:
        with self.lock:
            return len(self._order)

    def copies(self) -> list[EmulatedRequest]:
        with self.lock:
            return [replace(self._requests[rid]) for rid in self._order]

    def copy_now(self, request_id: str) -> EmulatedRequest:
        """The request as it stands now (KeyError when the queue never kept it)."""
        with self.lock:
            request = self[request_id]
            self.advance(request, time.time())
            return replace(request)

    def __getitem__(self, request_id: str) -> EmulatedRequest:
        """(under the lock) The request, as last moved (KeyError when never kept)."""
        return self._requests[request_id]

    def find(self, request_id: str) -> EmulatedRequest | None:
        """(under the lock) The request, as last moved."""
        return self._requests.get(request_id)

    # --- changing ---------------------------------------------------------------------

    def add(self, request: EmulatedRequest) -> int:
        """Queue a request; how many earlier requests are still waiting to start."""
        with self.lock:
            self._requests[request.request_id] = request
            self._order.append(request.request_id)
            # The waiting line is only kept when a concurrency limit makes anyone wait.
            if self.timing.concurrency is not None and "stuck-in-queue" not in request.faults:
                self._waiting.append(request.request_id)
            position = self.queued_before(request)
            self._on_due(request, self.completion_time(request))
        return position

    def cancel(self, request: EmulatedRequest, now: float) -> None:
        """(under the lock) End a request no runner has taken: it costs nothing."""
        request.cancelled = True
        request.model_seconds = max(0.0, now - request.started_at) if request.started_at else 0.0
        request.status, request.completed_at = "COMPLETED", now
        request.error, request.error_type = "Request cancelled", "cancelled"
        self._on_due(request, now)

    # --- the clock --------------------------------------------------------------------

    def queued_before(self, request: EmulatedRequest) -> int:
        """(under the lock) How many earlier requests are still waiting to start."""
        now = time.time()
        if self.timing.concurrency is not None:
            self.advance_runners(now)
            ahead = 0
            for request_id in self._waiting:
                if request_id == request.request_id:
                    return ahead
                ahead += self._requests[request_id].status == "IN_QUEUE"
            return ahead  # a stuck request waits behind everyone
        ahead = 0
        for other in self._requests.values():
            if other.submitted_at < request.submitted_at:
                self.advance(other, now)
                ahead += other.status == "IN_QUEUE"
        return ahead

    def completion_time(self, request: EmulatedRequest) -> float | None:
        if "stuck-in-queue" in request.faults and not request.cancelled:
            return None
        if self.timing.concurrency is not None:
            # Known only once a runner takes it; its webhook is scheduled then (_start_run).
            return None
        return request.submitted_at + self.timing.queue_seconds + request.run_seconds

    def advance(self, request: EmulatedRequest, now: float) -> None:
        """Move a request along the clock (called under the lock)."""
        if self.timing.concurrency is not None:
            self.advance_runners(now)
            return
        if request.status == "COMPLETED":
            return
        if "stuck-in-queue" in request.faults:
            return
        start = request.submitted_at + self.timing.queue_seconds
        if now >= start and request.started_at is None:
            request.started_at = start
            request.status = "IN_PROGRESS"
        done = self.completion_time(request)
        if done is not None and now >= done:
            _finish(request, done)

    def advance_runners(self, now: float) -> None:
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
                _finish(self._requests[request_id], done)
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
        self._on_due(request, done)


def _finish(request: EmulatedRequest, done: float) -> None:
    """A run completes: with the model's result, or the error its request earned."""
    if request.status == "COMPLETED":
        return
    request.status, request.completed_at = "COMPLETED", done
    request.model_seconds = request.run_seconds
    if request.validation:
        request.error, request.error_type = "Request validation failed", "validation_error"
    elif "validation-error" in request.faults:
        request.validation = [
            {"loc": ["body", "prompt"], "msg": "prompt rejected by policy", "type": "value_error"}
        ]
        request.error, request.error_type = "Request validation failed", "validation_error"
    elif "model-error" in request.faults:
        request.error, request.error_type = "Model crashed", "model_error"

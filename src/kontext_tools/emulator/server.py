"""The emulator as one object: its parts wired together, served on 127.0.0.1 while it runs,
and what a test or the local run may read of it."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from kontext_tools.emulator.access import EmulatedEndpoint, KeyCheck
from kontext_tools.emulator.answers import QueueAnswers
from kontext_tools.emulator.faults import Faults
from kontext_tools.emulator.outputs import Outputs
from kontext_tools.emulator.queue import RequestQueue
from kontext_tools.emulator.request import EmulatedRequest
from kontext_tools.emulator.routes import Router
from kontext_tools.emulator.timing import EmulatorTiming
from kontext_tools.emulator.urls import EmulatorUrls
from kontext_tools.emulator.webhooks import WebhookSchedule, WebhookSender
from kontext_tools.loopback import LoopbackServer, StartStop

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DEFAULT_TIMING = EmulatorTiming()
DEFAULT_ENDPOINT = EmulatedEndpoint()


class FalQueueEmulator(StartStop):
    def __init__(
        self,
        *,
        timing: EmulatorTiming = DEFAULT_TIMING,
        api_key: str | None = None,
        endpoint: EmulatedEndpoint = DEFAULT_ENDPOINT,
        port: int = 0,
    ) -> None:
        self.model_path = endpoint.path
        self.timing = timing
        # The router is built below, once its parts are; the server calls it per request.
        self._server = LoopbackServer.for_wsgi(self._serve, port)
        lock = threading.RLock()
        self._stopping = threading.Event()
        self._faults = Faults()
        self._keys = KeyCheck(endpoint, api_key)
        self._schedule = WebhookSchedule(lock, timing)
        self._queue = RequestQueue(timing, lock, on_due=self._run_scheduled)
        urls = EmulatorUrls(self._server.base_url, endpoint.owner_app, self._server.port)
        self._outputs = outputs = Outputs(self._queue, self._faults, urls)
        answers = QueueAnswers(self._queue, self._faults, outputs, urls, self._stopping)
        self._webhooks = WebhookSender(
            self._queue, self._schedule, self._faults, answers, self._stopping
        )
        self._router = Router(endpoint, self._keys, answers, outputs, self.jwks)
        self._sender = threading.Thread(
            target=self._webhooks.run, daemon=True, name="emulator-webhooks"
        )
        self._started = False

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> Self:
        with self._queue.lock:
            if self._started:
                return self
            self._started = True
        self._server.start()
        self._sender.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._schedule.wake_all()
        self._server.stop()
        self._outputs.stop()
        if self._started:
            self._sender.join(timeout=5)

    def _run_scheduled(self, request: EmulatedRequest, completes_at: float | None) -> None:
        """(under the queue lock) A run's end is known: its webhook falls due then, and the
        model makes its outputs meanwhile."""
        self._schedule.schedule(request, completes_at)
        if completes_at is not None:
            self._outputs.start_making(request)

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._router(environ, start_response)

    # --- inspection -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    @property
    def submit_count(self) -> int:
        return self._queue.count

    def requests(self) -> list[EmulatedRequest]:
        return self._queue.copies()

    def get(self, request_id: str) -> EmulatedRequest:
        return self._queue.copy_now(request_id)

    def auth_headers_seen(self) -> list[str]:
        return self._keys.seen()

    def inject_fault(self, fault: str, *, times: int = 1) -> None:
        self._faults.inject(fault, times)

    def jwks(self) -> dict[str, Any]:
        return self._webhooks.signer.jwks()

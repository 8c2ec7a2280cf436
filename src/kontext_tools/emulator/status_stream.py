"""The status stream, as fal's queue serves it (docs/fal-queue.md, "Status stream"):
`GET .../requests/{id}/status/stream` answers 200 `text/event-stream`, one `data:` line
of the status object (the status endpoint's fields) at once and then on each change, a
comment every `keepalive_seconds` to keep the connection open, and closes after the
COMPLETED event. A request already done gets its COMPLETED event and the end at once.

Faults (faults.py): `stream-absent` answers 405 as a queue without the stream would,
`stream-cut` ends the stream after its first event, `stream-malformed` sends an event
that is not a status.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from kontext_tools.emulator.answers import QueueAnswers
from kontext_tools.emulator.faults import Faults
from kontext_tools.emulator.replies import send_answer, send_json
from kontext_tools.loopback import QuietHandler

# How often the stream looks at the request for a change (emulator-internal, no network).
CHANGE_CHECK_SECONDS = 0.01


@dataclass(frozen=True)
class StatusStream:
    answers: QueueAnswers
    keepalive_seconds: float = 15.0

    @property
    def faults(self) -> Faults:
        return self.answers.faults

    @property
    def stopping(self) -> threading.Event:
        return self.answers.stopping

    def serve(self, handler: QuietHandler, request_id: str, with_logs: bool) -> None:
        if self.faults.hits(request_id, "stream-absent"):
            return send_json(handler, 405, {"detail": "Method Not Allowed"})
        answer = self.answers.stream_event(request_id, with_logs, opened=True)
        if answer.code == 404:
            return send_answer(handler, answer, request_id=request_id)
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("x-fal-request-id", request_id)
        # No length: the end of the stream is the end of the connection.
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        try:
            self._events(handler, request_id, with_logs, answer.document)
        except (BrokenPipeError, ConnectionResetError):
            return None  # the reader went away; nothing to finish
        return None

    def _events(
        self, handler: QuietHandler, request_id: str, with_logs: bool, document: Any
    ) -> None:
        cut = self.faults.hits(request_id, "stream-cut")
        if self.faults.hits(request_id, "stream-malformed"):
            return _write(handler, "data: <html>502 Bad Gateway</html>\n\n")
        _send(handler, document)
        quiet_since = time.monotonic()
        while document.get("status") != "COMPLETED" and not cut:
            if self.stopping.wait(CHANGE_CHECK_SECONDS):
                return None
            now = self.answers.stream_event(request_id, with_logs).document
            if now != document:
                document = now
                _send(handler, document)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self.keepalive_seconds:
                _write(handler, ": keep-alive\n\n")
                quiet_since = time.monotonic()
        return None


def _send(handler: QuietHandler, document: Any) -> None:
    _write(handler, f"data: {json.dumps(document)}\n\n")


def _write(handler: QuietHandler, text: str) -> None:
    handler.wfile.write(text.encode())
    handler.wfile.flush()

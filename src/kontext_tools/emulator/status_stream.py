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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from kontext_tools.emulator.answers import QueueAnswers
from kontext_tools.emulator.faults import Faults
from kontext_tools.emulator.replies import answer_response, json_response

# How often the stream looks at the request for a change (emulator-internal, no network).
CHANGE_CHECK_SECONDS = 0.01


@dataclass(frozen=True)
class StatusStream:
    answers: QueueAnswers
    keepalive_seconds: float = 15.0

    @property
    def faults(self) -> Faults:
        return self.answers.faults

    def response(self, request_id: str, with_logs: bool) -> Response:
        if self.faults.hits(request_id, "stream-absent"):
            return json_response(405, {"detail": "Method Not Allowed"})
        answer = self.answers.stream_event(request_id, with_logs, opened=True)
        if answer.code == 404:
            return answer_response(answer, request_id=request_id)
        # No length: the end of the stream is the end of the connection.
        events = self._events(request_id, with_logs, answer.document)
        headers = {"Cache-Control": "no-cache", "x-fal-request-id": request_id}
        return Response(events, 200, headers, content_type="text/event-stream")

    def _events(self, request_id: str, with_logs: bool, document: Any) -> Iterator[bytes]:
        cut = self.faults.hits(request_id, "stream-cut")
        if self.faults.hits(request_id, "stream-malformed"):
            yield b"data: <html>502 Bad Gateway</html>\n\n"
            return
        yield _event(document)
        quiet_since = time.monotonic()
        while document.get("status") != "COMPLETED" and not cut:
            if self.answers.stopping.wait(CHANGE_CHECK_SECONDS):
                return
            now = self.answers.stream_event(request_id, with_logs).document
            if now != document:
                document = now
                yield _event(document)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self.keepalive_seconds:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()


def _event(document: Any) -> bytes:
    return f"data: {json.dumps(document)}\n\n".encode()

"""Fault modes, chosen per request by a marker in the prompt, `[fault:NAME]`, `[fault:NAME*N]`
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
| stream-absent | the status stream answers 405 (a queue without one) |
| stream-cut | the status stream ends after its first event, before COMPLETED |
| stream-malformed | the status stream sends an event that is not a status |
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

Faults that change a request for good (stuck-in-queue, nsfw, webhook-*...) are read from
`EmulatedRequest.faults`; faults that fail calls are counted here.
"""

from __future__ import annotations

import re
import threading

FAULT_MARKER = re.compile(r"\[fault:([a-z0-9-]+)(?:=([0-9.]+))?(?:\*(\d+))?\]")


def fault_names(prompt: str) -> tuple[str, ...]:
    """The faults a prompt's markers name, in order."""
    return tuple(name for name, _, _ in FAULT_MARKER.findall(prompt))


class Faults:
    """Which calls fail: a marker `*N` (or inject_fault times=N) fails N calls, then stops.

    Markers are armed per scope (a submit's prompt, then the request it queued); injected
    faults hit the next calls of any scope, first.
    """

    def __init__(self) -> None:
        self._left: dict[tuple[str, str], int | None] = {}
        self._values: dict[tuple[str, str], str | None] = {}
        self._injected: dict[str, int] = {}
        self._lock = threading.Lock()

    def arm(self, scope: str, prompt: str) -> None:
        with self._lock:
            for name, value, times in FAULT_MARKER.findall(prompt):
                key = (scope, name)
                if key not in self._left:
                    self._left[key] = int(times) if times else None
                    self._values[key] = value or None

    def inject(self, fault: str, times: int) -> None:
        with self._lock:
            self._injected[fault] = self._injected.get(fault, 0) + times

    def take(self, scope: str, name: str) -> tuple[bool, str | None]:
        """Whether this call fails with the fault, and the marker's value (`=V`)."""
        with self._lock:
            if self._injected.get(name, 0) > 0:
                self._injected[name] -= 1
                return True, None
            return self._take_armed((scope, name))

    def hits(self, scope: str, name: str) -> bool:
        return self.take(scope, name)[0]

    def _take_armed(self, key: tuple[str, str]) -> tuple[bool, str | None]:
        if key not in self._left:
            return False, None
        left = self._left[key]
        if left is not None:
            if left <= 0:
                return False, None
            self._left[key] = left - 1
        return True, self._values.get(key)

"""An emulator of fal's queue API for FLUX.1 Kontext [max], on 127.0.0.1.

It speaks the protocol in docs/fal-queue.md: submit -> IN_QUEUE
(queue_position) -> IN_PROGRESS (logs) -> COMPLETED, status 202/200, response URLs under
the owner/app only, hosted output files, cancel, COMPLETED-with-error plus a 422 result for
bad requests, and signed webhooks (Ed25519, with a JWKS of its own). The output is a real
edit made with Pillow from the input and the prompt. Status is a function of the clock,
so nothing sleeps to move a request along; the outputs are made while a request runs.

Used by `make demo`, the integration tests and the benchmarks; of the rest of the package
it uses only loopback.py (its HTTP server), and nothing of the pipeline's layer.

Fault modes are chosen per request by a marker in the prompt, `[fault:NAME]`,
`[fault:NAME*N]` or `[fault:NAME=V]`, or for the next calls by `inject_fault(NAME, times=N)`;
faults.py lists them all.

With `EmulatorTiming(concurrency=N)` (`--concurrency N`) at most N requests run at once,
as fal limits them per key; the rest wait IN_QUEUE in submit order, with their true queue
positions, and each starts when a runner frees up.

As fal does: every answer about a request carries `x-fal-request-id`; the submit answer
carries `gateway_request_id`; cancelling a request that is running is only a request (it
still completes); an ERROR webhook carries the detail in `payload`; webhooks are retried
10 times over 2 hours, on a schedule scaled by `webhook_time_scale`; `data:` inputs over
10 MB encoded fail to load.

Rooms: server.py (the emulator, wired and served on werkzeug's server), routes.py (the
route table, werkzeug's URL map: method and path -> answer),
answers.py (submit, status, result, cancel), queue.py (requests and the clock: positions,
runners, completion), request.py (one request's record), timing.py, validation.py (the
model's checks), imaging.py (the Pillow edit), outputs.py (rendered outputs, hosted
files), webhooks.py (schedule, delivery, retries), webhook_signing.py, faults.py,
access.py (the API key), urls.py, replies.py (answers as werkzeug Responses),
status_stream.py (the server-sent status events), command.py
(`python -m kontext_tools.emulator`).
"""

from kontext_tools.emulator.access import EmulatedEndpoint
from kontext_tools.emulator.command import main
from kontext_tools.emulator.request import EmulatedRequest
from kontext_tools.emulator.server import FalQueueEmulator
from kontext_tools.emulator.timing import EmulatorTiming

__all__ = [
    "EmulatedEndpoint",
    "EmulatedRequest",
    "EmulatorTiming",
    "FalQueueEmulator",
    "main",
]

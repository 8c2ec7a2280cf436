"""Jobs run through the whole pipeline on moto + the emulator, and what each one took.

Overhead is what the pipeline adds to the model: (notification published - upload) minus
the time the emulator held the request (queue + run, from its own clock). Published is
SNS's own timestamp of the notification, so how often this harness looks for it adds
nothing. Transitions are
the `*StateEntered` events of each execution's history, which is what Step Functions
Standard bills. Nothing here is asserted; every figure is printed and saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kontext_pipeline.core.models import SourceObject

from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image

# The template's own defaults: the plan learns the model's run time from the jobs it runs,
# nothing here is tuned to the emulated model, whose times (5 s, 30 s) differ from the
# 20 s guess.
TEMPLATE_DEFAULTS = {"ExpectedModelSeconds": "20", "PollMinSeconds": "2", "PollMaxSeconds": "30"}
# How often the harness looks for notifications between uploads. A notification's time is
# SNS's own Timestamp, so looking less often changes no figure; it only keeps the
# harness's own requests to the local AWS from competing with the jobs for the CPU.
NOTIFICATION_POLL_SECONDS = 0.2


@dataclass
class JobFigures:
    overhead_seconds: float
    model_seconds: float
    transitions: int
    status: str
    # Requests to the queue about the request's progress: status calls plus status streams
    # opened (the emulator counts both).
    status_requests: int = 0


def run_jobs(
    pipeline: LocalPipeline,
    count: int,
    tag: str,
    *,
    timeout: float,
    spacing: float = 0.0,
    prompt_suffix: str = "",
) -> list[JobFigures]:
    """Upload `count` images, one every `spacing` seconds (0: all at once), and follow
    them to their notifications. `prompt_suffix`: emulator fault markers for every job."""
    image = make_image(size=(256, 192))
    keys = [f"inputs/bench/{tag}-{index}.png" for index in range(count)]
    started = time.time()
    uploaded: dict[str, float] = {}
    received: dict[str, tuple[float, Any]] = {}
    seen = 0  # notifications already looked at: each pass reads only the new ones
    deadline = started + count * spacing + timeout
    due = [started + index * spacing for index in range(count)]
    while len(received) < count and time.time() < deadline:
        while len(uploaded) < count and time.time() >= due[len(uploaded)]:
            key = keys[len(uploaded)]
            uploaded[key] = time.time()
            prompt = f"make it blue #{len(uploaded)}{prompt_suffix}"
            pipeline.upload(image, key=key, prompt=prompt)
        seen += _take_fresh(pipeline.notifications()[seen:], uploaded, received)
        time.sleep(_pause(due[len(uploaded) :], deadline))
    return [
        job_figures(pipeline, notification, uploaded_at=uploaded[key], notified_at=notified_at)
        for key, (notified_at, notification) in received.items()
    ]


def _take_fresh(
    fresh: list[Any], uploaded: dict[str, float], received: dict[str, tuple[float, Any]]
) -> int:
    """Keep the first notification of each uploaded key; how many were looked at."""
    for item in fresh:
        key = item.notification.source.key
        if key in uploaded and key not in received:
            received[key] = (item.published_at, item.notification)
    return len(fresh)


def _pause(uploads_due: list[float], deadline: float) -> float:
    """Until the next upload is due, or the next look for notifications."""
    until = uploads_due[0] if uploads_due else deadline
    return max(0.0, min(until - time.time(), NOTIFICATION_POLL_SECONDS))


def job_figures(
    pipeline: LocalPipeline, notification: Any, *, uploaded_at: float, notified_at: float
) -> JobFigures:
    """One job's overhead, model time, transitions and status, from its notification."""
    end_to_end = notified_at - uploaded_at
    if notification.request_id is None:  # failed before the model saw it
        reason = notification.failure.reason if notification.failure else "unknown"
        return JobFigures(end_to_end, 0.0, 0, f"FAILED {reason}")
    request = pipeline.emulator.get(notification.request_id)
    held = (request.completed_at or notified_at) - request.submitted_at
    transitions = transitions_of(pipeline, notification.source)
    status = notification.status
    if notification.failure:
        status += f" {notification.failure.reason}"
    requests = request.status_polls + request.status_streams
    return JobFigures(end_to_end - held, held, transitions, status, requests)


def transitions_of(pipeline: LocalPipeline, source: SourceObject) -> int:
    """The states the job's execution entered: what Step Functions Standard bills."""
    execution = pipeline.execution_for(source)
    if not execution:
        return 0
    return sum(
        1
        for event in pipeline.history(execution["executionArn"])
        if event["type"].endswith("StateEntered")
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]

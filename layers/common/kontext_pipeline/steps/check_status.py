"""CheckStatus: look at how the model's request goes, and plan the next look.

While the answer is due within the inline budget, it keeps looking here (the queue's status
stream where it has one, else status calls: status_looks.py); otherwise it hands
back to the state machine's Wait loop with the plan's next wait (model_queue/poll_plan.py).
An error, a run past the run limit or a wait past the queue-wait limit fails the job (ReportFailure
cancels).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kontext_pipeline.core.config import (
    HttpSettings,
    ModelQueueSettings,
    ModelSettings,
    PollSettings,
)
from kontext_pipeline.core.errors import (
    ModelDeadlineExceededError,
    ModelQueueWaitExceededError,
    ModelRequestFailedError,
)
from kontext_pipeline.core.models import ModelJob, QueueStatus, utc_now
from kontext_pipeline.core.protocols import ModelQueue
from kontext_pipeline.model_queue.poll_plan import PollPlan
from kontext_pipeline.model_queue.status_looks import StatusLooks


@dataclass(frozen=True)
class Clock:
    """The time of day for the job's record, a monotonic clock and a sleep for the loop."""

    now: Callable[[], datetime] = utc_now
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


class CheckStatusSettings(ModelSettings, HttpSettings, ModelQueueSettings, PollSettings):
    """What functions/check_status reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class CheckStatusDeps:
    queue: ModelQueue
    poll_plan: PollPlan
    clock: Clock = SYSTEM_CLOCK


def run(job: ModelJob, deps: CheckStatusDeps) -> ModelJob:
    """Look at the request; while the answer is due within the inline budget, keep looking
    here (the queue's status stream, else a status call every interval: status_looks.py).

    COMPLETED moves on; an error, a run past the run limit or a wait past the queue-wait
    limit fails the job (ReportFailure cancels). Otherwise the job goes back to the Wait
    loop with the plan's next wait (model_queue/poll_plan.py). A job's first look at a model
    whose run time is unknown watches through the likely range (the plan's first watch).
    """
    plan, clock = deps.poll_plan.with_typical_run(job.typical_run_seconds), deps.clock
    first_watch = plan.watches_first(job.polls)
    inline_until = clock.monotonic() + plan.inline_budget(first_watch)
    looks = StatusLooks(
        deps.queue,
        job.status_url,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        window_ends=inline_until,
    )
    try:
        status = looks.first()
        while True:
            checked_at = clock.now()
            job = _observe(job, status, checked_at)
            if job.status == "COMPLETED":
                return job
            until = _until_worth_asking(plan, job, checked_at)
            # A limit falls due even if the queue has nothing new to say: look then.
            looks.look_by(clock.monotonic() + max(0.0, _until_limit(job, checked_at)))
            # Bounded: each look waits (a stream's next change, or a pause of at least one
            # interval), and the budget ends the loop.
            if not plan.keep_asking_inline(until, inline_until - clock.monotonic()):
                return _back_to_the_loop(plan, job, until, checked_at)
            status = looks.next(plan.inline_pause(until, first_watch))
    finally:
        looks.close()


def _until_worth_asking(plan: PollPlan, job: ModelJob, checked_at: datetime) -> float:
    """Seconds until the next answer is worth asking for, never past the limit in force."""
    if job.status == "IN_QUEUE":
        until = plan.until_worth_asking_queued(job.queue_position, job.seconds_per_position)
    else:
        running_since = job.in_progress_since or checked_at
        until = plan.until_worth_asking_running((checked_at - running_since).total_seconds())
    return min(until, _until_limit(job, checked_at))


def _back_to_the_loop(plan: PollPlan, job: ModelJob, until: float, at: datetime) -> ModelJob:
    wait = plan.loop_wait(
        until, queued=job.status == "IN_QUEUE", pace_known=job.seconds_per_position is not None
    )
    # Never sleep past a limit: the next look lands on it, so the cancel is prompt.
    wait = min(wait, max(1, math.ceil(_until_limit(job, at))))
    return job.model_copy(update={"next_poll_seconds": wait})


def _observe(job: ModelJob, status: QueueStatus, now: datetime) -> ModelJob:
    """The job after one status answer; raises when the answer or a limit ends it."""
    if status.status == "COMPLETED":
        return _completed(job, status, now)
    if status.status == "IN_QUEUE":
        return _queued(job, status, now)
    return _running(job, status, now)


def _completed(job: ModelJob, status: QueueStatus, now: datetime) -> ModelJob:
    if status.error:
        kind = f" (error_type {status.error_type})" if status.error_type else ""
        raise ModelRequestFailedError.from_model(
            f"the model reported: {status.error}{kind}", status.error_type
        )
    return job.model_copy(
        update={
            "status": "COMPLETED",
            "polls": job.polls + 1,
            "queue_position": None,
            "next_poll_seconds": 0,
            "checked_at": now,
            "run_seconds": _run_seconds(job, status, now),
        }
    )


def _queued(job: ModelJob, status: QueueStatus, now: datetime) -> ModelJob:
    if now >= job.deadline_at:
        raise ModelQueueWaitExceededError(
            f"request {job.request_id} still waiting in the model's queue (position "
            f"{status.queue_position}) {(now - job.submitted_at).total_seconds():.0f} s "
            "after submit (queue-wait limit)"
        )
    return job.model_copy(
        update={
            "status": "IN_QUEUE",
            "queue_position": status.queue_position,
            "seconds_per_position": _queue_pace(job, status, now),
            "checked_at": now,
            "polls": job.polls + 1,
        }
    )


def _running(job: ModelJob, status: QueueStatus, now: datetime) -> ModelJob:
    # The queue does not say when the run began: it lies between the last look that saw it
    # waiting (or the submit), which the plan aims from, and this one, which the limit
    # counts from, so neither looks late nor cancels early.
    running_since = job.in_progress_since or job.checked_at or job.submitted_at
    seen_running_at = job.seen_running_at or now
    running_for = (now - seen_running_at).total_seconds()
    if job.run_limit_seconds and running_for >= job.run_limit_seconds:
        raise ModelDeadlineExceededError(
            f"request {job.request_id} still {status.status} {running_for:.0f} s after it "
            "was first seen running (run limit)"
        )
    return job.model_copy(
        update={
            "status": status.status,
            "queue_position": None,
            "in_progress_since": running_since,
            "seen_running_at": seen_running_at,
            "checked_at": now,
            "polls": job.polls + 1,
        }
    )


def _queue_pace(job: ModelJob, status: QueueStatus, now: datetime) -> float | None:
    """Seconds per queue position, from how far the queue moved since the last look."""
    if job.status != "IN_QUEUE" or job.queue_position is None or status.queue_position is None:
        return job.seconds_per_position
    moved = job.queue_position - status.queue_position
    elapsed = (now - (job.checked_at or job.submitted_at)).total_seconds()
    if moved <= 0 or elapsed <= 0:
        return job.seconds_per_position
    return elapsed / moved


def _run_seconds(job: ModelJob, status: QueueStatus, now: datetime) -> float | None:
    """The model's own inference time when the queue reports it, else what polls saw."""
    reported = status.metrics.get("inference_time")
    if isinstance(reported, int | float) and reported > 0:
        return float(reported)
    if job.in_progress_since is not None:
        return (now - job.in_progress_since).total_seconds()
    return None


def _until_limit(job: ModelJob, at: datetime) -> float:
    """Seconds from `at` until the limit that applies to the job's state now."""
    if job.status == "IN_PROGRESS" and job.run_limit_seconds:
        started = job.seen_running_at or at
        return job.run_limit_seconds - (at - started).total_seconds()
    return (job.deadline_at - at).total_seconds()

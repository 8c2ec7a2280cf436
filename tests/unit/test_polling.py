"""The poll plan and CheckStatus: inline looks when the answer is due, few loops otherwise,
limits that tell a long queue from a stuck request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kontext_pipeline.core.errors import ModelDeadlineExceededError, ModelQueueWaitExceededError
from kontext_pipeline.core.models import ModelJob, QueueStatus
from kontext_pipeline.core.protocols import StatusStreamUnavailableError
from kontext_pipeline.model_queue.poll_plan import PollPlan
from kontext_pipeline.steps.check_status import CheckStatusDeps, Clock
from kontext_pipeline.steps.check_status import run as check_status

from tests.fakes import sample_job

GUESS = PollPlan(min_seconds=2, max_seconds=30, expected_model_seconds=20)
KNOWN_5S = GUESS.with_typical_run(5.0)
KNOWN_30S = GUESS.with_typical_run(30.0)
SUBMITTED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class TimelineQueue:
    """A queue on a fake clock: `timeline(t)` is the status t seconds after submit.

    With `stream`, it also has a status stream: the status now, then each change (looked
    for every 10 ms of fake time), ending after COMPLETED or quietly when the window ends;
    `stream_fails_after` events, it breaks off instead."""

    def __init__(
        self, timeline: Any, *, stream: bool = False, stream_fails_after: int | None = None
    ) -> None:
        self.timeline = timeline
        self.t = 0.0
        self.asked = 0
        self.stream = stream
        self.stream_fails_after = stream_fails_after
        self.streams_opened = 0

    def status(self, status_url: str) -> QueueStatus:
        self.asked += 1
        return QueueStatus.model_validate(self.timeline(self.t))

    def watch(self, status_url: str, *, seconds: float) -> Iterator[QueueStatus]:
        if not self.stream:
            raise StatusStreamUnavailableError("no stream", absent=True)
        self.streams_opened += 1
        return self._events(self.t + seconds)

    def _events(self, ends: float) -> Iterator[QueueStatus]:
        last = self.timeline(self.t)
        sent = 1
        yield QueueStatus.model_validate(last)
        while self.t < ends and last["status"] != "COMPLETED":
            if sent == self.stream_fails_after:
                raise StatusStreamUnavailableError("the stream broke off")
            self.t = round(self.t + 0.01, 6)
            if self.timeline(self.t) != last:
                last = self.timeline(self.t)
                sent += 1
                yield QueueStatus.model_validate(last)

    def now(self) -> datetime:
        return SUBMITTED + timedelta(seconds=self.t)

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def run_then_complete(queued: float, run: float) -> Any:
    def timeline(t: float) -> dict[str, Any]:
        if t < queued:
            return {"status": "IN_QUEUE", "queue_position": 0}
        if t < queued + run:
            return {"status": "IN_PROGRESS"}
        return {"status": "COMPLETED", "metrics": {"inference_time": run}}

    return timeline


def a_job(**update: Any) -> ModelJob:
    return sample_job().model_copy(
        update={
            "submitted_at": SUBMITTED,
            "checked_at": None,
            "in_progress_since": None,
            "status": "IN_QUEUE",
            "queue_position": 0,
            "deadline_at": SUBMITTED + timedelta(hours=4),
            "run_limit_seconds": 900,
            **update,
        }
    )


def follow(job: ModelJob, queue: TimelineQueue, plan: PollPlan) -> Iterator[ModelJob]:
    """What the state machine does: Wait, CheckStatus, until COMPLETED (bounded)."""
    queue.t += job.next_poll_seconds
    for _ in range(500):
        clock = Clock(now=queue.now, monotonic=queue.clock, sleep=queue.sleep)
        job = check_status(job, CheckStatusDeps(queue=queue, poll_plan=plan, clock=clock))
        yield job
        if job.status == "COMPLETED":
            return
        queue.t += job.next_poll_seconds
    raise AssertionError("never completed")


# --- the plan ---------------------------------------------------------------------------


def test_with_a_known_run_time_the_first_wait_reaches_just_before_its_early_edge() -> None:
    # Given a model that recently ran 30 s / 5 s
    # When a request starts at once / Then the first look comes at 90% of it, rounded down
    assert KNOWN_30S.after_submit(queue_position=0) == 27
    assert KNOWN_5S.after_submit(queue_position=0) == 4


def test_with_only_the_guess_the_plan_does_not_sleep_on_it() -> None:
    # Given no recorded run time, only the template's 20 s guess
    # When a request starts at once / Then it is looked at after a second, the shortest Wait
    assert GUESS.after_submit(queue_position=0) == 1
    # And with no asking inside CheckStatus (a fixed Wait loop) after the shortest poll wait
    no_inline = PollPlan(
        min_seconds=2, max_seconds=2, expected_model_seconds=20, inline_budget_seconds=0
    )
    assert no_inline.after_submit(queue_position=0) == 2


def test_a_queued_request_waits_half_the_expected_time_to_the_front() -> None:
    # Given a queue that moves one position per 4 s
    # When the request is at positions 0, 9 and 999
    waits = [KNOWN_5S.until_worth_asking_queued(p, 4.0) for p in (0, 9, 999)]
    # Then it waits half the way to the front, and the Wait state caps a long queue's wait
    assert waits[:2] == [2.0, 20.0]
    assert KNOWN_5S.loop_wait(waits[2], queued=True) == 300


def test_overdue_runs_back_off_in_proportion_and_up_to_the_maximum() -> None:
    # Given runs later and later past a 20 s typical window
    plan = GUESS.with_typical_run(20.0)
    # When the loop plans its waits
    waits = [
        plan.loop_wait(plan.until_worth_asking_running(s), queued=False) for s in (23, 60, 200)
    ]
    # Then the waits grow, from the minimum to the maximum
    assert waits == sorted(waits)
    assert (waits[0], waits[-1]) == (2, 30)


# --- CheckStatus through the plan -------------------------------------------------------


@pytest.mark.parametrize(("plan", "run"), [(KNOWN_5S, 5.3), (KNOWN_30S, 31.0), (KNOWN_30S, 28.0)])
def test_a_typical_run_costs_one_loop_and_is_seen_within_half_a_second(
    plan: PollPlan, run: float
) -> None:
    # Given a request that starts at once and runs about as long as recently
    queue = TimelineQueue(run_then_complete(queued=0.2, run=run))
    job = a_job(
        next_poll_seconds=plan.after_submit(0), typical_run_seconds=plan.expected_model_seconds
    )
    # When the state machine follows it
    looks = list(follow(job, queue, plan))
    # Then one CheckStatus sees it complete, within one inline interval of the end
    assert len(looks) == 1
    assert looks[-1].status == "COMPLETED"
    assert queue.t - (0.2 + run) <= plan.inline_interval_seconds
    assert looks[-1].run_seconds == run


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("run", [5.0, 30.0, 39.0])
def test_with_only_the_guess_the_first_look_watches_through_the_likely_range(
    run: float, stream: bool
) -> None:
    # Given the template's 20 s guess (nothing recorded) and a model that runs 5, 30 or 39 s
    queue = TimelineQueue(run_then_complete(queued=0.2, run=run), stream=stream)
    job = a_job(next_poll_seconds=GUESS.after_submit(0))
    # When followed
    looks = list(follow(job, queue, GUESS))
    # Then one CheckStatus, started a second after the submit, sees it end within an interval
    assert len(looks) == 1
    assert queue.t - (0.2 + run) <= GUESS.inline_interval_seconds
    # And with the stream that was one request to the queue; without it, a poll an interval
    assert (queue.streams_opened, queue.asked) == (1, 0) if stream else queue.asked > 10


def test_a_run_longer_than_the_first_watch_goes_on_in_the_wait_loop() -> None:
    # Given the 20 s guess and a model that runs 70 s
    queue = TimelineQueue(run_then_complete(queued=0.2, run=70.0), stream=True)
    job = a_job(next_poll_seconds=GUESS.after_submit(0))
    # When followed
    looks = list(follow(job, queue, GUESS))
    # Then the first look watched 40 s, and a few loops (backing off in proportion to how
    # late it is) later it is seen, within a fifth of the run
    assert 2 <= len(looks) <= 5
    assert looks[0].polls > 0
    assert queue.t - 70.2 <= 70 / 5


def test_a_later_look_at_an_unknown_model_does_not_watch_again() -> None:
    # Given a job already looked at once (polls 1), on a model of unknown run time
    plan = GUESS
    # When the plan says how long its next CheckStatus may look / Then the usual budget
    assert plan.watches_first(polls_so_far=0)
    assert not plan.watches_first(polls_so_far=1)
    assert plan.inline_budget(first_watch=False) == plan.inline_budget_seconds


@pytest.mark.parametrize(("plan", "run"), [(KNOWN_5S, 5.4), (KNOWN_30S, 32.0)])
def test_with_the_stream_a_typical_run_costs_one_or_two_requests(
    plan: PollPlan, run: float
) -> None:
    # Given a queue with a status stream, and a run about as long as recently
    queue = TimelineQueue(run_then_complete(queued=0.2, run=run), stream=True)
    job = a_job(
        next_poll_seconds=plan.after_submit(0), typical_run_seconds=plan.expected_model_seconds
    )
    # When followed
    looks = list(follow(job, queue, plan))
    # Then the end is seen within one stream step, and the queue was asked at most twice
    assert looks[-1].status == "COMPLETED"
    assert queue.t - (0.2 + run) <= 0.02
    assert queue.streams_opened + queue.asked <= 2


def test_a_run_limit_inside_the_first_watch_ends_it_on_time() -> None:
    # Given a model of unknown run time whose run never ends, a 6 s run limit, and a stream
    # that stays quiet while it runs
    queue = TimelineQueue(lambda t: {"status": "IN_PROGRESS"}, stream=True)
    job = a_job(run_limit_seconds=6, next_poll_seconds=GUESS.after_submit(0))
    # When followed / Then the first watch (40 s) ends at the limit, which fails the job
    with pytest.raises(ModelDeadlineExceededError, match="run limit"):
        list(follow(job, queue, GUESS))
    assert 7 <= queue.t <= 7.2


def test_a_stream_that_breaks_off_falls_back_to_polling() -> None:
    # Given a stream that breaks off after its first event, and a 5 s run of unknown time
    queue = TimelineQueue(run_then_complete(queued=0.2, run=5.0), stream=True, stream_fails_after=1)
    job = a_job(next_poll_seconds=GUESS.after_submit(0))
    # When followed
    looks = list(follow(job, queue, GUESS))
    # Then status calls take over in the same CheckStatus, and the end is seen as promptly
    assert len(looks) == 1
    assert queue.streams_opened == 1
    assert queue.asked > 0
    assert queue.t - 5.2 <= GUESS.inline_interval_seconds


def waiting_in_a_moving_queue(
    *, position: int, seconds_per_position: float
) -> tuple[ModelJob, TimelineQueue, PollPlan]:
    """A request at `position` of a queue that moves steadily, then runs 8 s (as recently)."""

    def timeline(t: float) -> dict[str, Any]:
        now_at = position - int(t / seconds_per_position)
        if now_at >= 0:
            return {"status": "IN_QUEUE", "queue_position": now_at}
        return run_then_complete(queued=(position + 1) * seconds_per_position, run=8.0)(t)

    plan = GUESS.with_typical_run(8.0)
    job = a_job(
        queue_position=position,
        next_poll_seconds=plan.after_submit(position),
        typical_run_seconds=8.0,
    )
    return job, TimelineQueue(timeline), plan


def test_a_long_queue_costs_few_loops() -> None:
    # Given a request 200th in a queue that moves a position every 4 s (2 runners, 8 s runs)
    job, queue, plan = waiting_in_a_moving_queue(position=199, seconds_per_position=4)
    # When the state machine follows it through the queue and the run
    looks = list(follow(job, queue, plan))
    # Then it takes a few loops, not one per PollMaxSeconds (808 s / 30 s = 27), and no limit fired
    assert looks[-1].status == "COMPLETED"
    assert len(looks) <= 12


def test_a_request_that_stops_moving_in_the_queue_fails_as_queue_wait_exceeded() -> None:
    # Given a request stuck at position 3, and a queue-wait limit of 10 minutes
    queue = TimelineQueue(lambda t: {"status": "IN_QUEUE", "queue_position": 3})
    job = a_job(queue_position=3, deadline_at=SUBMITTED + timedelta(minutes=10))
    # When followed / Then it fails as queue_wait_exceeded, no later than the limit plus a look
    with pytest.raises(ModelQueueWaitExceededError, match="queue-wait limit"):
        list(follow(job, queue, KNOWN_5S))
    assert 600 <= queue.t <= 601


@pytest.mark.parametrize("stream", [False, True])
def test_a_run_past_the_run_limit_fails_as_deadline_exceeded_whatever_the_queue_wait(
    stream: bool,
) -> None:
    # Given a request that waited an hour in the queue, then runs forever; run limit 60 s
    # (with the stream, nothing is sent while it runs: the limit itself must end the look)
    def timeline(t: float) -> dict[str, Any]:
        return (
            {"status": "IN_QUEUE", "queue_position": 0} if t < 3600 else {"status": "IN_PROGRESS"}
        )

    queue = TimelineQueue(timeline, stream=stream)
    job = a_job(run_limit_seconds=60, next_poll_seconds=3590)
    # When followed / Then the hour in the queue does not count; 60 s of running does
    with pytest.raises(ModelDeadlineExceededError, match="run limit"):
        list(follow(job, queue, KNOWN_5S))
    assert 3660 <= queue.t <= 3662


def test_time_between_two_looks_is_not_counted_against_the_run_limit() -> None:
    # Given a request last seen waiting at 0 s, started at 25 s, first seen running at 30 s
    # (a queued wait), which then completes at 33 s; run limit 6 s
    def timeline(t: float) -> dict[str, Any]:
        if t < 25:
            return {"status": "IN_QUEUE", "queue_position": 3}
        return {"status": "IN_PROGRESS"} if t < 33 else {"status": "COMPLETED"}

    queue = TimelineQueue(timeline)
    job = a_job(queue_position=3, run_limit_seconds=6, next_poll_seconds=0)
    queue.t = 30.0  # the look that first sees it running comes late
    # When followed / Then it completes: 3 s seen running, not 33 s since the last queued look
    assert list(follow(job, queue, KNOWN_5S))[-1].status == "COMPLETED"


def test_a_deep_queue_that_moves_fast_is_not_slept_through() -> None:
    # Given a request 500th in a queue served by 40 runners (8 s runs: 0.2 s a position)
    job, queue, plan = waiting_in_a_moving_queue(position=499, seconds_per_position=0.2)
    # When followed (the first wait cannot know the pace: one run at a time would be 2,000 s)
    looks = list(follow(job, queue, plan))
    # Then it is seen done within seconds of the end (108 s), not minutes later
    assert looks[-1].status == "COMPLETED"
    assert queue.t <= 115

"""Fakes of the steps' edges (kontext_pipeline/core/protocols.py), answering from memory.

A unit test hands these to a step (or to a Runtime as its `model_queue`) instead of the
model's HTTP queue or the SNS/EventBridge notifier, and then reads what they were asked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kontext_pipeline.core.errors import PipelineError
from kontext_pipeline.core.models import ModelJob, ModelResult, QueueStatus, QueueSubmission
from kontext_pipeline.core.notification import Notification
from kontext_pipeline.core.protocols import StatusStreamUnavailableError

from tests.conftest import load_event


def sample_job() -> ModelJob:
    """The job of the sample CheckStatus task (events/task_check_status.json)."""
    return ModelJob.model_validate(load_event("task_check_status")["job"])


@dataclass(frozen=True)
class FakeCancel:
    status: str = "CANCELLATION_REQUESTED"

    @property
    def may_still_run(self) -> bool:
        return self.status == "CANCELLATION_REQUESTED"


@dataclass
class FakeQueue:
    """A model queue: counts submits, answers statuses in turn (it has no status stream),
    keeps one result.

    `submit_error`, when set, is raised by the next submits instead of accepting them (a
    ModelQueueUnavailableError for a queue that cannot be reached, ModelSubmitUncertainError
    for an answer lost on the way back).
    """

    statuses: list[QueueStatus] = field(default_factory=list)
    outcome: ModelResult | None = None
    submit_error: PipelineError | None = None
    submitted: list[Mapping[str, Any]] = field(default_factory=list)
    webhook_urls: list[str | None] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    status_calls: int = 0

    def submit(self, body: Mapping[str, Any], *, webhook_url: str | None = None) -> QueueSubmission:
        if self.submit_error is not None:
            raise self.submit_error
        self.submitted.append(body)
        self.webhook_urls.append(webhook_url)
        base = f"https://queue.example/requests/req-{len(self.submitted)}"
        return QueueSubmission(
            request_id=f"req-{len(self.submitted)}",
            status_url=base + "/status",
            response_url=base,
            cancel_url=base + "/cancel",
            queue_position=0,
        )

    def status(self, status_url: str) -> QueueStatus:
        self.status_calls += 1
        if len(self.statuses) > 1:
            return self.statuses.pop(0)
        return self.statuses[0]

    def watch(self, status_url: str, *, seconds: float) -> Iterator[QueueStatus]:
        """This queue has no status stream (as a queue without one answers 404)."""
        raise StatusStreamUnavailableError("no status stream here", absent=True)

    def result(self, response_url: str) -> ModelResult:
        if self.outcome is None:
            raise AssertionError(f"no result scripted for {response_url}")
        return self.outcome

    def cancel(self, cancel_url: str) -> FakeCancel:
        self.cancelled.append(cancel_url)
        return FakeCancel()


@dataclass
class FakePublisher:
    """A notifier that keeps what it was asked to publish (once per job and status)."""

    published: list[Notification] = field(default_factory=list)

    def publish_once(self, notification: Notification) -> str:
        self.published.append(notification)
        return f"message-{len(self.published)}"


@dataclass(frozen=True)
class Context:
    """What Powertools reads of the Lambda context."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000

"""What the steps call on the model's queue and on the notifier: the edges a unit test fakes.

FalQueueClient (model_queue/client.py) and Notifier (notifications/publish.py) are the
real ones; tests/fakes.py holds fakes that answer from memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kontext_pipeline.core.models import ModelResult, QueueStatus, QueueSubmission
    from kontext_pipeline.core.notification import Notification


class CancelAnswer(Protocol):
    """What a cancel achieved (OK, CANCELLATION_REQUESTED, ALREADY_COMPLETED, NOT_FOUND)."""

    @property
    def status(self) -> str: ...

    @property
    def may_still_run(self) -> bool: ...


class StatusStreamUnavailableError(Exception):
    """The queue's status stream cannot be read: the caller asks the status endpoint instead.

    `absent`: the queue offers no stream (404/405), rather than one that failed.
    """

    def __init__(self, message: str, *, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


class ModelQueue(Protocol):
    """The model's queue: submit once, ask how it goes (or watch it), fetch the result, cancel."""

    def submit(
        self, body: Mapping[str, Any], *, webhook_url: str | None = None
    ) -> QueueSubmission: ...

    def status(self, status_url: str) -> QueueStatus: ...

    def watch(self, status_url: str, *, seconds: float) -> Iterator[QueueStatus]:
        """Statuses as the queue streams them, for up to `seconds` (model_queue/client.py
        documents it); raises StatusStreamUnavailableError where there is no stream."""
        ...

    def result(self, response_url: str) -> ModelResult: ...

    def cancel(self, cancel_url: str) -> CancelAnswer: ...


class Publisher(Protocol):
    """Publishes a job's notification at most once per job and status."""

    def publish_once(self, notification: Notification) -> str: ...

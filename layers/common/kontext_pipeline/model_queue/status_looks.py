"""How CheckStatus looks at a request inside one invocation: the queue's status stream
while it serves, else the status endpoint after each pause.

The stream sends the current status at once and then each change, so one open request
replaces a poll every 0.1 s and shows completion the moment the queue sends it. Where the
queue has no stream (404/405), or it fails, sends something that is not a status or ends
early, the looks fall back to asking the status endpoint for the rest of the invocation
(fal's own client only ever polls, so any queue that speaks fal's protocol answers that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.protocols import ModelQueue, StatusStreamUnavailableError

if TYPE_CHECKING:
    from kontext_pipeline.core.models import QueueStatus

# A stream that went quiet is opened again only with at least this much of the window left.
REOPEN_MIN_SECONDS = 0.1


class StatusLooks:
    """The looks of one CheckStatus at one request, until `window_ends` (monotonic)."""

    def __init__(
        self,
        queue: ModelQueue,
        status_url: str,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
        window_ends: float,
    ) -> None:
        self._queue = queue
        self._url = status_url
        self._monotonic = monotonic
        self._sleep = sleep
        self._window_ends = window_ends
        # No window, no stream: a single look is one status call.
        self._streaming = window_ends > monotonic()
        self._events: Iterator[QueueStatus] | None = None
        self._last: QueueStatus | None = None

    def first(self) -> QueueStatus:
        """The status now: the stream's first event, else one status call."""
        return self._remember(self._from_stream() or self._queue.status(self._url))

    def next(self, pause: float) -> QueueStatus:
        """The next status: the stream's next change (or, once the window is over with
        nothing new, the last one again), else a status call after `pause` seconds."""
        status = self._from_stream()
        if status is None:
            self._sleep(pause)
            status = self._queue.status(self._url)
        return self._remember(status)

    def look_by(self, moment: float) -> None:
        """A look is due by `moment` (monotonic; a limit falls then) even if nothing changes:
        the window ends there, and a stream opened for a longer one is opened again."""
        if moment < self._window_ends:
            self._window_ends = moment
            self.close()

    def close(self) -> None:
        """Let go of an open stream (its connection goes back to the pool)."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        self._events = None

    def _remember(self, status: QueueStatus) -> QueueStatus:
        self._last = status
        return status

    def _from_stream(self) -> QueueStatus | None:
        """The stream's next status; the last one when the window closed quietly; None when
        there is no stream to read (any more)."""
        while self._streaming:
            left = self._window_ends - self._monotonic()
            if self._events is None and left < REOPEN_MIN_SECONDS:
                # The window closed: the last status holds (nothing new came), and any
                # further look in this invocation is a status call.
                self._streaming = False
                return self._last
            try:
                if self._events is None:
                    self._events = self._queue.watch(self._url, seconds=max(left, 0.0))
                return next(self._events)
            except StopIteration:
                self._events = None  # quiet until the window ended: open again if time is left
            except StatusStreamUnavailableError as exc:
                self._events = None
                self._streaming = False
                logger.info(
                    "status stream unavailable, asking the status endpoint",
                    extra={"why": str(exc), "absent": exc.absent},
                )
        return None

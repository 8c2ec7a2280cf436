"""The model's queue, on httpx: submit, status, result, cancel.

Rules from fal's queue protocol (docs/fal-queue.md) that this client enforces:
- the status/response/cancel URLs the submit returns are the only ones used (they name
  the owner/app only; URLs built from the model path answer 404);
- a request's progress is read from the status stream where the queue offers it (one
  open request instead of a poll every 0.1 s; `watch`), else from the status endpoint;
- a submit is sent once: a 5xx that names a request id is followed here (if the queue
  knows the request, it is ours). How each call is sent, retried and kept on the
  configured host, and which answers prove a submit never arrived: model_queue/transport.py.
  What the answers mean: model_queue/answers.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from httpx_sse import EventSource, SSEError

from kontext_pipeline.core.errors import (
    ModelQueueUnavailableError,
    ModelRequestFailedError,
    ModelSubmitUncertainError,
    Reason,
)
from kontext_pipeline.core.models import ModelResult, QueueStatus, QueueSubmission
from kontext_pipeline.core.protocols import StatusStreamUnavailableError
from kontext_pipeline.model_queue.answers import (
    CancelOutcome,
    cancel_outcome,
    describe_detail,
    parse_answer,
)
from kontext_pipeline.model_queue.transport import (
    FalEndpoint,
    QueueCall,
    QueueTransport,
    RetryPolicy,
    SubmitNamedRequestError,
)

# Apps under these namespaces carry one more path segment (fal_client APP_NAMESPACES).
APP_NAMESPACES = ("workflows", "comfy")
# One read of the status stream waits at most this long: a quiet stream is opened again
# rather than held past the caller's window by more than this (fal sends a comment every
# 15 s to keep it open; a status only when it changes).
STREAM_READ_SECONDS = 10.0
# Answers that say the queue has no status stream (as opposed to a stream that failed).
NO_STREAM_CODES = frozenset({404, 405})


class FalQueueClient:
    """One model endpoint on one queue host. Takes its httpx client; owns no connections."""

    def __init__(
        self,
        http: httpx.Client,
        endpoint: FalEndpoint,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = QueueTransport(http, endpoint, retry or RetryPolicy(), sleep)
        self._model_path = endpoint.model_path.strip("/")

    @property
    def submit_url(self) -> str:
        return f"{urlunsplit(self._transport.base)}/{self._model_path}"

    def submit(self, body: Mapping[str, Any], *, webhook_url: str | None = None) -> QueueSubmission:
        params = {"fal_webhook": webhook_url} if webhook_url else None
        call = QueueCall("POST", self.submit_url, dict(body), params, submit=True)
        try:
            response = self._transport.send(call)
        except SubmitNamedRequestError as answer:
            return self._follow(answer)
        try:
            submission = parse_answer(response, QueueSubmission, what="submit")
        except ModelQueueUnavailableError as exc:
            # A 2xx came back, so the queue probably took the request: never resubmit.
            raise ModelSubmitUncertainError(
                f"submit answered {response.status_code} with an unreadable body; "
                "not resubmitted, to avoid paying twice"
            ) from exc
        on_host = self._transport.on_configured_host
        return submission.model_copy(
            update={
                "status_url": on_host(submission.status_url),
                "response_url": on_host(submission.response_url),
                "cancel_url": on_host(submission.cancel_url),
            }
        )

    def status(self, status_url: str) -> QueueStatus:
        url = self._transport.on_configured_host(status_url)
        call = QueueCall("GET", url, params={"logs": "1"})
        response = self._transport.send(call)
        try:
            return parse_answer(response, QueueStatus, what="status")
        except ModelQueueUnavailableError:
            # A cut or garbled answer is usually the connection, not the queue: ask once more.
            self._transport.sleep(self._transport.retry.delay(0))
        return parse_answer(self._transport.send(call), QueueStatus, what="status")

    def watch(self, status_url: str, *, seconds: float) -> Iterator[QueueStatus]:
        """The request's statuses from the queue's status stream (`{status_url}/stream`), the
        current one first, then each change, for up to `seconds`.

        Ends after COMPLETED, or when `seconds` pass with nothing more to say. Raises
        StatusStreamUnavailableError when the queue offers no stream, or it fails, sends
        something that is not a status, or ends early: the caller asks `status` instead.
        """
        parts = urlsplit(self._transport.on_configured_host(status_url))
        url = urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/stream"))
        deadline = time.monotonic() + seconds
        read_seconds = max(0.05, min(seconds, STREAM_READ_SECONDS))
        call = QueueCall("GET", url, params={"logs": "1"})
        try:
            with self._transport.stream(call, read_seconds=read_seconds) as response:
                if not response.is_success:
                    absent = response.status_code in NO_STREAM_CODES
                    raise StatusStreamUnavailableError(
                        f"status stream answered {response.status_code}", absent=absent
                    )
                yield from _statuses(EventSource(response), deadline)
        except httpx.ReadTimeout:
            return  # nothing new within the window
        except (httpx.HTTPError, SSEError) as exc:
            raise StatusStreamUnavailableError(
                f"status stream failed: {type(exc).__name__}"
            ) from exc

    def result(self, response_url: str) -> ModelResult:
        """The result of a COMPLETED request. Called right after completion: fal keeps a
        result about an hour, one of 10 KB or more only minutes, so a 404 here means it
        expired, not that the request never existed."""
        url = self._transport.on_configured_host(response_url)
        response = self._transport.send(QueueCall("GET", url, accept_errors=True))
        if response.status_code in (404, 410):
            raise ModelRequestFailedError(
                f"the model completed the request but its result is gone ({response.status_code}"
                f": {describe_detail(response)}). fal keeps a result about an hour, one of 10 KB "
                "or more only minutes unless payload storage (X-Fal-Store-IO) is on; upload the "
                "image again to run it again",
                reason=Reason.MODEL_RESULT_EXPIRED,
            )
        if response.status_code >= 400:
            raise ModelRequestFailedError(
                f"the model's result answered {response.status_code}: {describe_detail(response)}",
                reason=Reason.MODEL_VALIDATION_ERROR if response.status_code == 422 else None,
            )
        return parse_answer(response, ModelResult, what="result")

    def cancel(self, cancel_url: str) -> CancelOutcome:
        url = self._transport.on_configured_host(cancel_url)
        return cancel_outcome(self._transport.send(QueueCall("PUT", url, accept_errors=True)))

    def _request_urls(self, request_id: str) -> dict[str, str]:
        """status/response/cancel URLs for a request id, as fal_client's `from_request_id`
        builds them: on the owner/app only (plus a namespace), never the endpoint path."""
        segments = self._model_path.split("/")
        depth = 3 if segments[0] in APP_NAMESPACES else 2
        base = f"{self.submit_url.removesuffix(self._model_path)}"
        response_url = f"{base}{'/'.join(segments[:depth])}/requests/{request_id}"
        return {
            "response_url": response_url,
            "status_url": f"{response_url}/status",
            "cancel_url": f"{response_url}/cancel",
        }

    def _follow(self, answer: SubmitNamedRequestError) -> QueueSubmission:
        """A 5xx submit answer that names a request: if the queue knows it, that is ours."""
        urls = self._request_urls(answer.request_id)
        try:
            probe = self._transport.send(QueueCall("GET", urls["status_url"], accept_errors=True))
            status = (
                parse_answer(probe, QueueStatus, what="status")
                if probe.status_code in (200, 202)
                else None
            )
        except ModelQueueUnavailableError:
            status = None
        if status is None:
            raise ModelSubmitUncertainError(
                f"submit answered {answer.status_code} ({answer.detail}) naming request "
                f"{answer.request_id}, which the queue could not confirm; not resubmitted, to "
                "avoid paying twice"
            )
        return QueueSubmission(
            request_id=answer.request_id, queue_position=status.queue_position, **urls
        )


def _statuses(source: EventSource, deadline: float) -> Iterator[QueueStatus]:
    """Each `data:` event as a status, until COMPLETED or the deadline."""
    for event in source.iter_sse():
        if not event.data:
            continue
        try:
            status = QueueStatus.model_validate_json(event.data)
        except ValueError as exc:
            raise StatusStreamUnavailableError("status stream sent something not a status") from exc
        yield status
        if status.status == "COMPLETED" or time.monotonic() >= deadline:
            return
    raise StatusStreamUnavailableError("status stream ended before COMPLETED")

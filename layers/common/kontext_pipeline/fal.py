"""The model's queue, on httpx: submit, status, result, cancel.

Rules from fal's queue protocol (docs/fal-queue.md) that this client enforces:
- the status/response/cancel URLs the submit returns are the only ones used (they name
  the owner/app only; URLs built from the model path answer 404);
- the API key goes to the configured base URL only: a returned URL on another host is
  rebuilt on the configured base, never followed;
- 408, 409, 429, 502, 503, 504 and connection failures are retried with exponential
  backoff and full jitter, a bounded number of times; other 4xx never are;
- a submit whose answer was lost (read timeout after sending) is never retried, because
  a second submit pays for a second image.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from kontext_pipeline.errors import (
    ModelQueueUnavailableError,
    ModelRequestFailedError,
    ModelRequestRejectedError,
    ModelSubmitUncertainError,
)
from kontext_pipeline.models import ModelResult, QueueStatus, QueueSubmission

RETRYABLE_STATUS_CODES = frozenset({408, 409, 429, 502, 503, 504})
_Payload = TypeVar("_Payload", QueueSubmission, QueueStatus, ModelResult)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, honouring Retry-After up to `max_delay`."""

    max_attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(self.max_delay, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP-date Retry-After: fall back to our own backoff
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class CancelOutcome:
    status: str  # CANCELLATION_REQUESTED | ALREADY_COMPLETED | NOT_FOUND


class FalQueueClient:
    """One model endpoint on one queue host. Takes its httpx client; owns no connections."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        model_path: str,
        api_key: str | None,
        auth_header: str = "Authorization",
        auth_scheme: str = "Key",
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._base = urlsplit(base_url.rstrip("/"))
        self._model_path = model_path.strip("/")
        self._auth: dict[str, str] = {}
        if api_key:
            self._auth[auth_header] = f"{auth_scheme} {api_key}".strip()
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    @property
    def submit_url(self) -> str:
        return f"{urlunsplit(self._base)}/{self._model_path}"

    def submit(
        self,
        body: Mapping[str, Any],
        *,
        webhook_url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> QueueSubmission:
        params = {"fal_webhook": webhook_url} if webhook_url else None
        response = self._send(
            "POST", self.submit_url, json=dict(body), params=params, headers=headers, submit=True
        )
        try:
            submission = self._parse(response, QueueSubmission, what="submit")
        except ModelQueueUnavailableError as exc:
            # A 2xx came back, so the queue probably took the request: never resubmit.
            raise ModelSubmitUncertainError(
                f"submit answered {response.status_code} with an unreadable body; "
                "not resubmitted, to avoid paying twice"
            ) from exc
        return submission.model_copy(
            update={
                "status_url": self.on_configured_host(submission.status_url),
                "response_url": self.on_configured_host(submission.response_url),
                "cancel_url": self.on_configured_host(submission.cancel_url),
            }
        )

    def status(self, status_url: str) -> QueueStatus:
        url = self.on_configured_host(status_url)
        response = self._send("GET", url, params={"logs": "1"})
        try:
            return self._parse(response, QueueStatus, what="status")
        except ModelQueueUnavailableError:
            # A cut or garbled answer is usually the connection, not the queue: ask once more.
            self._sleep(self._retry.delay(0))
        return self._parse(self._send("GET", url, params={"logs": "1"}), QueueStatus, what="status")

    def result(self, response_url: str) -> ModelResult:
        response = self._send("GET", self.on_configured_host(response_url), accept_errors=True)
        if response.status_code >= 400:
            raise ModelRequestFailedError(
                f"the model's result answered {response.status_code}: {describe_detail(response)}",
                reason="model_validation_error" if response.status_code == 422 else None,
            )
        return self._parse(response, ModelResult, what="result")

    def cancel(self, cancel_url: str) -> CancelOutcome:
        response = self._send("PUT", self.on_configured_host(cancel_url), accept_errors=True)
        if response.status_code == 202:
            return CancelOutcome("CANCELLATION_REQUESTED")
        if response.status_code == 400:
            return CancelOutcome("ALREADY_COMPLETED")
        if response.status_code == 404:
            return CancelOutcome("NOT_FOUND")
        raise ModelRequestRejectedError(
            f"cancel answered {response.status_code}: {describe_detail(response)}"
        )

    def on_configured_host(self, url: str) -> str:
        """Keep the returned URL's path, but always on the configured scheme and host.

        The key is attached to every call; following a URL to another host would hand it over.
        """
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) == (self._base.scheme, self._base.netloc) and (
            parts.path.startswith(self._base.path)
        ):
            return url
        path = parts.path if not self._base.path else f"{self._base.path}{parts.path}"
        return urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))

    def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        submit: bool = False,
        accept_errors: bool = False,
    ) -> httpx.Response:
        """One call with bounded retries. `accept_errors` hands non-retryable 4xx/5xx back."""
        last_problem = "no attempt made"
        for attempt in range(self._retry.max_attempts):
            retry_after: str | None = None
            try:
                response = self._http.request(
                    method, url, json=json, params=params, headers={**(headers or {}), **self._auth}
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the queue: safe to try again, even for a submit.
                last_problem = f"{type(exc).__name__}: could not connect to {self._host}"
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError) as exc:
                if submit:
                    raise ModelSubmitUncertainError(
                        f"submit to {self._host} sent but unanswered ({type(exc).__name__}); "
                        "not resubmitted, to avoid paying twice"
                    ) from exc
                last_problem = f"{type(exc).__name__} from {self._host}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE_STATUS_CODES:
                    if accept_errors:
                        return response
                    raise ModelRequestRejectedError(
                        f"{method} {self._redact(url)} answered {response.status_code}: "
                        f"{describe_detail(response)}",
                        reason=_rejection_reason(response.status_code),
                    )
                last_problem = f"{response.status_code} from {self._host}"
                retry_after = response.headers.get("retry-after")
            if attempt + 1 < self._retry.max_attempts:
                self._sleep(self._retry.delay(attempt, retry_after))
        raise ModelQueueUnavailableError(
            f"{method} {self._redact(url)} failed {self._retry.max_attempts} times; last: "
            f"{last_problem}"
        )

    def _parse(self, response: httpx.Response, model: type[_Payload], *, what: str) -> _Payload:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            # Truncated or malformed JSON is a transport fault more often than a protocol change.
            raise ModelQueueUnavailableError(
                f"the queue's {what} answer was not the expected JSON "
                f"({exc.error_count()} problems, {len(response.content)} bytes)",
                reason="malformed_queue_response",
            ) from exc

    @property
    def _host(self) -> str:
        return self._base.netloc

    @staticmethod
    def _redact(url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def describe_detail(response: httpx.Response) -> str:
    """fal's error bodies: `{"detail": "..."}` or, for 422, a list of {loc, msg, type}."""
    try:
        detail: Any = response.json().get("detail", response.text)
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return response.text[:300] or response.reason_phrase
    if isinstance(detail, list):
        problems = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                problems.append(f"{loc or 'request'}: {item.get('msg', item)}")
            else:
                problems.append(str(item))
        return "; ".join(problems)[:1000]
    return str(detail)[:1000]


def _rejection_reason(status_code: int) -> str:
    if status_code in (401, 403):
        return "model_auth_failed"
    if status_code == 404:
        return "model_not_found"
    if status_code == 422:
        return "model_validation_error"
    return "model_request_rejected"

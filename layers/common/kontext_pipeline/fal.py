"""The model's queue, on httpx: submit, status, result, cancel.

Rules from fal's queue protocol (docs/fal-queue.md) that this client enforces:
- the status/response/cancel URLs the submit returns are the only ones used (they name
  the owner/app only; URLs built from the model path answer 404);
- the API key goes to the configured base URL only: a returned URL on another host is
  rebuilt on the configured base, never followed;
- 408, 409, 429, 502, 503, 504 and connection failures are retried with exponential
  backoff and full jitter, a bounded number of times; other 4xx never are;
- a submit is retried only when it provably never reached the model: a connection that
  never opened, 408/409/429, or a 502/503/504 from the ingress in front of fal (no
  `x-fal-request-id` header, a proxy's page rather than fal's JSON), as fal_client's
  `_is_ingress_error` decides. A 5xx that names a request id is followed (the request may
  be queued); any other lost or 5xx answer fails as `model_submit_uncertain`, because a
  second submit pays for a second image.
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
    Reason,
)
from kontext_pipeline.models import ModelResult, QueueStatus, QueueSubmission

RETRYABLE_STATUS_CODES = frozenset({408, 409, 429, 502, 503, 504})
# What fal_client retries on any call (RETRY_CODES): nothing was queued.
NOTHING_QUEUED_STATUS_CODES = frozenset({408, 409, 429})
# fal_client's INGRESS_ERROR_CODES: retried only when the ingress, not fal, answered.
INGRESS_STATUS_CODES = frozenset({502, 503, 504})
REQUEST_ID_HEADER = "x-fal-request-id"
ERROR_TYPE_HEADER = "x-fal-error-type"
# Apps under these namespaces carry one more path segment (fal_client APP_NAMESPACES).
APP_NAMESPACES = ("workflows", "comfy")
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


CANCEL_STATUSES = ("OK", "CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND")


@dataclass(frozen=True)
class CancelOutcome:
    status: str  # OK | CANCELLATION_REQUESTED | ALREADY_COMPLETED | NOT_FOUND

    @property
    def may_still_run(self) -> bool:
        """A running request only gets a signal: it may still complete (and be billed)."""
        return self.status == "CANCELLATION_REQUESTED"


class _SubmitNamedRequestError(Exception):
    """A submit answered 5xx but named a request id: fal itself answered, so it may exist."""

    def __init__(self, request_id: str, status_code: int, detail: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id
        self.status_code = status_code
        self.detail = detail


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
        try:
            response = self._send(
                "POST",
                self.submit_url,
                json=dict(body),
                params=params,
                headers=headers,
                submit=True,
            )
        except _SubmitNamedRequestError as answer:
            return self._follow(answer)
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
        """The result of a COMPLETED request. Called right after completion: fal keeps a
        result about an hour, one of 10 KB or more only minutes, so a 404 here means it
        expired, not that the request never existed."""
        response = self._send("GET", self.on_configured_host(response_url), accept_errors=True)
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
        return self._parse(response, ModelResult, what="result")

    def cancel(self, cancel_url: str) -> CancelOutcome:
        """fal answers OK / CANCELLATION_REQUESTED (202), ALREADY_COMPLETED (400) or
        NOT_FOUND (404) in the body's `status`; the body wins, the code is the fallback."""
        response = self._send("PUT", self.on_configured_host(cancel_url), accept_errors=True)
        body_status = _body_field(response, "status")
        if body_status in CANCEL_STATUSES:
            return CancelOutcome(body_status)
        by_code = {200: "OK", 202: "CANCELLATION_REQUESTED", 400: "ALREADY_COMPLETED"}
        if response.status_code in by_code:
            return CancelOutcome(by_code[response.status_code])
        if response.status_code == 404:
            return CancelOutcome("NOT_FOUND")
        raise ModelRequestRejectedError(
            f"cancel answered {response.status_code}: {describe_detail(response)}"
        )

    def request_urls(self, request_id: str) -> dict[str, str]:
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

    def _follow(self, answer: _SubmitNamedRequestError) -> QueueSubmission:
        """A 5xx submit answer that names a request: if the queue knows it, that is ours."""
        urls = self.request_urls(answer.request_id)
        try:
            probe = self._send("GET", urls["status_url"], accept_errors=True)
            status = (
                QueueStatus.model_validate_json(probe.content)
                if probe.status_code in (200, 202)
                else None
            )
        except (ModelQueueUnavailableError, ValidationError):
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
                if submit and response.status_code >= 500:
                    self._judge_submit_5xx(response)  # raises unless provably never queued
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

    def _judge_submit_5xx(self, response: httpx.Response) -> None:
        """Return only for an ingress error (safe to resubmit); otherwise follow or stop."""
        if is_ingress_error(response):
            return
        request_id = _body_field(response, "request_id") or response.headers.get(REQUEST_ID_HEADER)
        detail = f"{response.status_code}: {describe_detail(response)}"
        if request_id:
            raise _SubmitNamedRequestError(request_id, response.status_code, detail)
        raise ModelSubmitUncertainError(
            f"submit to {self._host} answered {detail} without naming a request, and not from "
            "the ingress: the model may have it; not resubmitted, to avoid paying twice"
        )

    def _parse(self, response: httpx.Response, model: type[_Payload], *, what: str) -> _Payload:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            # Truncated or malformed JSON is a transport fault more often than a protocol change.
            raise ModelQueueUnavailableError(
                f"the queue's {what} answer was not the expected JSON "
                f"({exc.error_count()} problems, {len(response.content)} bytes)",
                reason=Reason.MALFORMED_QUEUE_RESPONSE,
            ) from exc

    @property
    def _host(self) -> str:
        return self._base.netloc

    @staticmethod
    def _redact(url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def is_ingress_error(response: httpx.Response) -> bool:
    """fal_client's `_is_ingress_error`: a 502/503/504 that the proxy in front of fal sent.

    fal's own answers carry `x-fal-request-id` and a JSON body; the ingress's carry neither
    (fal_client looks for "nginx" in the page; any non-JSON page counts here).
    """
    if response.status_code not in INGRESS_STATUS_CODES:
        return False
    if REQUEST_ID_HEADER in response.headers:
        return False
    try:
        return not isinstance(response.json(), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True


def describe_detail(response: httpx.Response) -> str:
    """fal's error bodies: `{"detail": "..."}` or, for 422, a list of {loc, msg, type};
    with the error type (body `error_type`, else the `X-Fal-Error-Type` header)."""
    error_type = _body_field(response, "error_type") or response.headers.get(ERROR_TYPE_HEADER)
    text = _describe_body(response)
    return f"{text} (error_type {error_type})" if error_type else text


def describe_detail_value(detail: Any) -> str:
    """A `detail` value (string, or a 422 list of {loc, msg, type}) as one line."""
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


def _describe_body(response: httpx.Response) -> str:
    try:
        detail: Any = response.json().get("detail", response.text)
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return response.text[:300] or response.reason_phrase
    return describe_detail_value(detail)


def _body_field(response: httpx.Response, name: str) -> str | None:
    try:
        document = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    value = document.get(name) if isinstance(document, dict) else None
    return str(value) if isinstance(value, str) and value else None


def _rejection_reason(status_code: int) -> Reason:
    if status_code in (401, 403):
        return Reason.MODEL_AUTH_FAILED
    if status_code == 404:
        return Reason.MODEL_NOT_FOUND
    if status_code == 422:
        return Reason.MODEL_VALIDATION_ERROR
    return Reason.MODEL_REQUEST_REJECTED

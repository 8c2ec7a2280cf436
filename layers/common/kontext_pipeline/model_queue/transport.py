"""One call to the model's queue, on httpx: the API key attached, the configured host
only, bounded retries, and the rule that a submit is never sent twice.

Rules from fal's queue protocol (docs/fal-queue.md) enforced here:
- the API key goes to the configured base URL only: a returned URL on another host is
  rebuilt on the configured base, never followed;
- 408, 409, 429, 502, 503, 504 and connection failures are retried with exponential
  backoff and full jitter, a bounded number of times; other 4xx never are;
- a submit is retried only when it provably never reached the model: a connection that
  never opened, 408/409/429, or a 502/503/504 from the ingress in front of fal (no
  `x-fal-request-id` header, a proxy's page rather than fal's JSON), as fal_client's
  `_is_ingress_error` decides. A 5xx that names a request id is followed (the request may
  be queued: model_queue/client.py asks the queue about it); any other lost or 5xx answer fails as
  `model_submit_uncertain`, because a second submit pays for a second image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from kontext_pipeline.core.backoff import full_jitter
from kontext_pipeline.core.errors import (
    ModelQueueUnavailableError,
    ModelRequestRejectedError,
    ModelSubmitUncertainError,
)
from kontext_pipeline.core.url_guards import redact_url
from kontext_pipeline.model_queue.answers import (
    describe_detail,
    is_ingress_error,
    named_request_id,
    rejection_reason,
)

# 408/409/429 are what fal_client retries on any call (RETRY_CODES): nothing was queued.
RETRYABLE_STATUS_CODES = frozenset({408, 409, 429, 502, 503, 504})


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
        return full_jitter(attempt, base=self.base_delay, cap=self.max_delay)


@dataclass(frozen=True)
class FalEndpoint:
    """One model on one queue host, and how the API key is presented there."""

    base_url: str
    model_path: str
    api_key: str | None
    auth_header: str = "Authorization"
    auth_scheme: str = "Key"


@dataclass(frozen=True)
class QueueCall:
    """One call to the queue, and how its answers are taken."""

    method: str
    url: str
    json: Any = None
    params: Mapping[str, str] | None = None
    submit: bool = False  # a submit: never sent again once it may have reached the model
    accept_errors: bool = False  # hand non-retryable 4xx/5xx back instead of raising


@dataclass(frozen=True)
class _TryAgain:
    """An attempt that failed in a way worth another: what went wrong, for the last error."""

    problem: str
    retry_after: str | None = None


class SubmitNamedRequestError(Exception):
    """A submit answered 5xx but named a request id: fal itself answered, so it may exist."""

    def __init__(self, request_id: str, status_code: int, detail: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id
        self.status_code = status_code
        self.detail = detail


class QueueTransport:
    """Sends calls to one queue host with the key. Takes its httpx client; owns no connections."""

    def __init__(
        self,
        http: httpx.Client,
        endpoint: FalEndpoint,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self.base = urlsplit(endpoint.base_url.rstrip("/"))
        self._auth: dict[str, str] = {}
        if endpoint.api_key:
            key = f"{endpoint.auth_scheme} {endpoint.api_key}".strip()
            self._auth[endpoint.auth_header] = key
        self.retry = retry
        self.sleep = sleep

    def on_configured_host(self, url: str) -> str:
        """Keep the returned URL's path, but always on the configured scheme and host.

        The key is attached to every call; following a URL to another host would hand it over.
        """
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) == (self.base.scheme, self.base.netloc) and (
            parts.path.startswith(self.base.path)
        ):
            return url
        path = parts.path if not self.base.path else f"{self.base.path}{parts.path}"
        return urlunsplit((self.base.scheme, self.base.netloc, path, parts.query, ""))

    def send(self, call: QueueCall) -> httpx.Response:
        """One call with bounded retries. `accept_errors` hands non-retryable 4xx/5xx back."""
        last = _TryAgain("no attempt made")
        for attempt in range(self.retry.max_attempts):
            outcome = self._attempt(call)
            if isinstance(outcome, httpx.Response):
                return outcome
            last = outcome
            if attempt + 1 < self.retry.max_attempts:
                self.sleep(self.retry.delay(attempt, outcome.retry_after))
        raise ModelQueueUnavailableError(
            f"{call.method} {redact_url(call.url)} failed {self.retry.max_attempts} times; "
            f"last: {last.problem}"
        )

    @contextmanager
    def stream(self, call: QueueCall, *, read_seconds: float) -> Iterator[httpx.Response]:
        """One call whose answer is read as it comes: once, no retries (a caller of a stream
        falls back to plain calls), with the key, never following a redirect, and each read
        bounded by `read_seconds` (the client's other timeouts as configured)."""
        configured = self._http.timeout
        timeout = httpx.Timeout(
            connect=configured.connect,
            read=read_seconds,
            write=configured.write,
            pool=configured.pool,
        )
        headers = {**self._auth, "Accept": "text/event-stream", "Cache-Control": "no-store"}
        with self._http.stream(
            call.method,
            call.url,
            params=call.params,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            yield response

    def _attempt(self, call: QueueCall) -> httpx.Response | _TryAgain:
        """One request: its answer, or why it is worth another try. Raises what is not."""
        try:
            response = self._http.request(
                call.method,
                call.url,
                json=call.json,
                params=call.params,
                headers=self._auth,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the queue: safe to try again, even for a submit.
            return _TryAgain(f"{type(exc).__name__}: could not connect to {self._host}")
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError) as exc:
            if call.submit:
                raise ModelSubmitUncertainError(
                    f"submit to {self._host} sent but unanswered ({type(exc).__name__}); "
                    "not resubmitted, to avoid paying twice"
                ) from exc
            return _TryAgain(f"{type(exc).__name__} from {self._host}")
        return self._judge(call, response)

    def _judge(self, call: QueueCall, response: httpx.Response) -> httpx.Response | _TryAgain:
        """An answer: taken, worth another try, or refused (ModelRequestRejectedError)."""
        if response.status_code < 400:
            return response
        if call.submit and response.status_code >= 500:
            self._judge_submit_5xx(response)  # raises unless provably never queued
        if response.status_code in RETRYABLE_STATUS_CODES:
            return _TryAgain(
                f"{response.status_code} from {self._host}", response.headers.get("retry-after")
            )
        if call.accept_errors:
            return response
        raise ModelRequestRejectedError(
            f"{call.method} {redact_url(call.url)} answered {response.status_code}: "
            f"{describe_detail(response)}",
            reason=rejection_reason(response.status_code),
        )

    def _judge_submit_5xx(self, response: httpx.Response) -> None:
        """Return only for an ingress error (safe to resubmit); otherwise follow or stop."""
        if is_ingress_error(response):
            return
        request_id = named_request_id(response)
        detail = f"{response.status_code}: {describe_detail(response)}"
        if request_id:
            raise SubmitNamedRequestError(request_id, response.status_code, detail)
        raise ModelSubmitUncertainError(
            f"submit to {self._host} answered {detail} without naming a request, and not from "
            "the ingress: the model may have it; not resubmitted, to avoid paying twice"
        )

    @property
    def _host(self) -> str:
        return self.base.netloc

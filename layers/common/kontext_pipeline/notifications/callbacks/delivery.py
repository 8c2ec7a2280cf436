"""The signed POST to a checked callback target, retried within a budget.

Delivery retries 5xx, 429, 408, timeouts and connection errors with exponential backoff
and full jitter, bounded in attempts and in time; then it raises, Lambda retries the
event asynchronously (bounded by the template), and the event lands in the dead-letter
queue. Another 4xx is the receiver's refusal: logged, not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from kontext_pipeline.core.backoff import full_jitter
from kontext_pipeline.core.errors import CallbackDeliveryError
from kontext_pipeline.core.observability import logger
from kontext_pipeline.notifications.callbacks.signing import SignedMessage
from kontext_pipeline.notifications.callbacks.urls import CallbackTarget

# Per attempt: four of them, with their backoff, fit well inside the function's 120 s.
ATTEMPT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "kontext-pipeline-callbacks/1"


@dataclass(frozen=True)
class RetryBudget:
    """How many attempts, and how long, a delivery may take; with the clock it is counted
    on and the sleep it spends (tests pass their own)."""

    max_attempts: int = 4
    max_seconds: float = 30.0
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def delay(self, attempt: int) -> float:
        """Full jitter under an exponential ceiling (attempts count from 1)."""
        return full_jitter(attempt - 1, base=self.base_delay_seconds, cap=self.max_delay_seconds)


@dataclass(frozen=True)
class DeliveryOutcome:
    outcome: str  # delivered | rejected
    status_code: int
    attempts: int
    webhook_id: str


def post_signed_notification(
    http: httpx.Client,
    target: CallbackTarget,
    notification: Mapping[str, Any],
    *,
    key: bytes,
    budget: RetryBudget = RetryBudget(),
) -> DeliveryOutcome:
    """POST the signed notification; retry transient failures within the budget."""
    message = SignedMessage.of(notification, key)
    started = budget.clock()
    last = "no attempt"
    for attempt in range(1, budget.max_attempts + 1):
        status, last = _attempt(http, target, message, attempt)
        if status is not None and (200 <= status < 300 or status not in RETRYABLE_STATUS):
            outcome = "delivered" if 200 <= status < 300 else "rejected"
            return DeliveryOutcome(outcome, status, attempt, message.webhook_id)
        delay = budget.delay(attempt)
        if attempt == budget.max_attempts or budget.clock() - started + delay > budget.max_seconds:
            break
        budget.sleep(delay)
    raise CallbackDeliveryError(
        f"{target.host}: no 2xx after {attempt} attempts in {budget.clock() - started:.0f} s "
        f"({last})"
    )


def _attempt(
    http: httpx.Client, target: CallbackTarget, message: SignedMessage, attempt: int
) -> tuple[int | None, str]:
    """One signed POST: the status it answered (None when none came), and how it went."""
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host_header(),
        **message.headers(int(time.time())),
    }
    try:
        status = _post(http, target, message.body, headers)
    except httpx.TransportError as exc:
        why = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "callback attempt failed",
            extra={"attempt": attempt, "webhook_id": message.webhook_id, "why": why},
        )
        return None, why
    logger.info(
        "callback attempt",
        extra={"attempt": attempt, "status": status, "webhook_id": message.webhook_id},
    )
    return status, f"HTTP {status}"


def _post(http: httpx.Client, target: CallbackTarget, body: bytes, headers: dict[str, str]) -> int:
    """One attempt; the answer's body is never read (a receiver cannot make us hold one)."""
    with http.stream(
        "POST",
        target.pinned_url(),
        content=body,
        headers=headers,
        timeout=ATTEMPT_TIMEOUT,
        # TLS is checked against the name, not the pinned address.
        extensions={"sni_hostname": target.host},
    ) as response:
        return response.status_code

"""What the model's queue answered: its JSON read into models, fal's error details, who
sent a 5xx (fal or the ingress in front of it), why a request was refused, and what a
cancel achieved. The client that asks (and retries) is model_queue/client.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from kontext_pipeline.core.errors import (
    ModelQueueUnavailableError,
    ModelRequestRejectedError,
    Reason,
)
from kontext_pipeline.core.models import ModelResult, QueueStatus, QueueSubmission

# fal_client's INGRESS_ERROR_CODES: retried only when the ingress, not fal, answered.
INGRESS_STATUS_CODES = frozenset({502, 503, 504})
REQUEST_ID_HEADER = "x-fal-request-id"
ERROR_TYPE_HEADER = "x-fal-error-type"
CANCEL_STATUSES = ("OK", "CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND")
_CANCEL_STATUS_BY_CODE = {
    200: "OK",
    202: "CANCELLATION_REQUESTED",
    400: "ALREADY_COMPLETED",
    404: "NOT_FOUND",
}
_Payload = TypeVar("_Payload", QueueSubmission, QueueStatus, ModelResult)


@dataclass(frozen=True)
class CancelOutcome:
    status: str  # OK | CANCELLATION_REQUESTED | ALREADY_COMPLETED | NOT_FOUND

    @property
    def may_still_run(self) -> bool:
        """A running request only gets a signal: it may still complete (and be billed)."""
        return self.status == "CANCELLATION_REQUESTED"


def parse_answer(response: httpx.Response, model: type[_Payload], *, what: str) -> _Payload:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # Truncated or malformed JSON is a transport fault more often than a protocol change.
        raise ModelQueueUnavailableError(
            f"the queue's {what} answer was not the expected JSON "
            f"({exc.error_count()} problems, {len(response.content)} bytes)",
            reason=Reason.MALFORMED_QUEUE_RESPONSE,
        ) from exc


def cancel_outcome(response: httpx.Response) -> CancelOutcome:
    """fal answers OK / CANCELLATION_REQUESTED (202), ALREADY_COMPLETED (400) or
    NOT_FOUND (404) in the body's `status`; the body wins, the code is the fallback."""
    body_status = body_field(response, "status")
    if body_status in CANCEL_STATUSES:
        return CancelOutcome(body_status)
    if response.status_code in _CANCEL_STATUS_BY_CODE:
        return CancelOutcome(_CANCEL_STATUS_BY_CODE[response.status_code])
    raise ModelRequestRejectedError(
        f"cancel answered {response.status_code}: {describe_detail(response)}"
    )


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


def named_request_id(response: httpx.Response) -> str | None:
    """The request an answer names: the body's `request_id`, else the `x-fal-request-id`."""
    return body_field(response, "request_id") or response.headers.get(REQUEST_ID_HEADER)


def with_error_type(text: str, error_type: str | None) -> str:
    """A model error's text, naming its type when fal gave one."""
    return f"{text} (error_type {error_type})" if error_type else text


def describe_detail(response: httpx.Response) -> str:
    """fal's error bodies: `{"detail": "..."}` or, for 422, a list of {loc, msg, type};
    with the error type (body `error_type`, else the `X-Fal-Error-Type` header)."""
    error_type = body_field(response, "error_type") or response.headers.get(ERROR_TYPE_HEADER)
    text = _describe_body(response)
    return with_error_type(text, error_type)


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


def body_field(response: httpx.Response, name: str) -> str | None:
    """A non-empty string field of a JSON object body, or None."""
    try:
        document = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    value = document.get(name) if isinstance(document, dict) else None
    return str(value) if isinstance(value, str) and value else None


def rejection_reason(status_code: int) -> Reason:
    """Why the queue refused a request, from the status code it answered."""
    if status_code in (401, 403):
        return Reason.MODEL_AUTH_FAILED
    if status_code == 404:
        return Reason.MODEL_NOT_FOUND
    if status_code == 422:
        return Reason.MODEL_VALIDATION_ERROR
    return Reason.MODEL_REQUEST_REJECTED

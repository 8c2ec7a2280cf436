"""The pipeline's errors, one module, one hierarchy.

A Lambda that raises reports the exception's class name as `errorType`; Step Functions
uses that as the error name its Retry and Catch rules match on, and the failure branch
turns it back into a notification. So the class names below are part of the contract
with statemachine/edit_pipeline.asl.json: rename one and the state machine changes too.

Every error carries a short machine-readable `reason` (a `Reason`, snake_case) for the
failure notification and SNS filter policies, and a message for people. The message travels
as `"<reason>: <message>"` because `errorMessage` is the only text Lambda passes on;
`CaughtError` reads it back out of what a Catch put in the state. Every `Reason` has a row
in the README's failure table (a unit test holds both lists together).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from botocore.exceptions import ClientError


class Reason(StrEnum):
    """Why a job failed (or a message was refused): `failure.reason` and the SNS attribute."""

    # The upload and its metadata
    INVALID_INPUT = "invalid_input"
    INVALID_METADATA = "invalid_metadata"
    INVALID_OPTION = "invalid_option"
    INVALID_SIDECAR = "invalid_sidecar"
    MISSING_PROMPT = "missing_prompt"
    PROMPT_TOO_LONG = "prompt_too_long"
    NOT_AN_IMAGE = "not_an_image"
    EMPTY_OBJECT = "empty_object"
    OBJECT_TOO_LARGE = "object_too_large"
    IMAGE_TOO_LARGE = "image_too_large"
    OBJECT_NOT_FOUND = "object_not_found"
    INPUT_TOO_LARGE_INLINE = "input_too_large_inline"
    # The deployment
    CONFIGURATION_ERROR = "configuration_error"
    MISSING_SETTING = "missing_setting"
    SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105 - a reason, not a secret
    ACCESS_DENIED = "access_denied"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    NOTIFICATION_FAILED = "notification_failed"
    # The model's queue
    MODEL_QUEUE_UNAVAILABLE = "model_queue_unavailable"
    MODEL_SUBMIT_UNCERTAIN = "model_submit_uncertain"
    MODEL_REQUEST_REJECTED = "model_request_rejected"
    MODEL_AUTH_FAILED = "model_auth_failed"
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_VALIDATION_ERROR = "model_validation_error"
    MODEL_REQUEST_FAILED = "model_request_failed"
    MODEL_RESULT_EXPIRED = "model_result_expired"
    MALFORMED_QUEUE_RESPONSE = "malformed_queue_response"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    QUEUE_WAIT_EXCEEDED = "queue_wait_exceeded"
    NO_OUTPUTS = "no_outputs"
    # The outputs
    OUTPUT_COPY_FAILED = "output_copy_failed"
    OUTPUT_FETCH_TRANSIENT = "output_fetch_transient"
    OUTPUT_URL_REFUSED = "output_url_refused"
    OUTPUT_UNAVAILABLE = "output_unavailable"
    OUTPUT_TOO_LARGE = "output_too_large"
    OUTPUT_NOT_AN_IMAGE = "output_not_an_image"
    OUTPUT_CORRUPT = "output_corrupt"
    # Spending
    BUDGET_EXCEEDED = "budget_exceeded"
    CONCURRENCY_CAP_REACHED = "concurrency_cap_reached"
    # Webhooks and callbacks (refused messages, not failed jobs)
    WEBHOOK_REJECTED = "webhook_rejected"
    CALLBACK_REFUSED = "callback_refused"
    CALLBACK_UNDELIVERED = "callback_undelivered"
    # The HTTP front door (functions/intake): refused requests, answered as problem documents
    UNAUTHORIZED = "unauthorized"
    INVALID_REQUEST = "invalid_request"
    REQUEST_TOO_LARGE = "request_too_large"
    IMAGE_URL_REFUSED = "image_url_refused"
    IMAGE_FETCH_FAILED = "image_fetch_failed"
    EDIT_NOT_FOUND = "edit_not_found"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    KEY_DAILY_CAP_REACHED = "key_daily_cap_reached"
    # Errors the state machine names itself (see ERROR_NAME_REASONS)
    TIMEOUT = "timeout"
    TASK_FAILED = "task_failed"
    STATE_MACHINE_ERROR = "state_machine_error"
    LAMBDA_ERROR = "lambda_error"
    UNEXPECTED_ERROR = "unexpected_error"


# Step Functions' own error names (no `<reason>: ` prefix to read) and what they mean.
ERROR_NAME_REASONS: Mapping[str, Reason] = {
    "States.Timeout": Reason.TIMEOUT,
    "States.HeartbeatTimeout": Reason.TIMEOUT,
    "States.TaskFailed": Reason.TASK_FAILED,
    "States.Runtime": Reason.STATE_MACHINE_ERROR,
}
_REASON_PREFIX = re.compile(r"^[a-z][a-z0-9_]{2,63}$")


def reason_for_error_name(error: str) -> Reason:
    """The reason for an error a Catch caught that no pipeline code raised."""
    if error in ERROR_NAME_REASONS:
        return ERROR_NAME_REASONS[error]
    if error.startswith("Lambda."):
        return Reason.LAMBDA_ERROR
    return Reason.UNEXPECTED_ERROR


def model_reason(error_type: str | None) -> str:
    """The model's own error_type as a reason: `image_load_error` -> `model_image_load_error`.

    fal's error types are open-ended, so these reasons are strings, not `Reason` members.
    """
    if not error_type:
        return Reason.MODEL_REQUEST_FAILED
    return error_type if error_type.startswith("model_") else f"model_{error_type}"


def aws_error_code(exc: ClientError) -> str:
    """The error code of a boto3 ClientError (`NoSuchKey`, ...), or `unknown` without one."""
    return str(exc.response.get("Error", {}).get("Code") or "unknown")


def aws_error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


@dataclass(frozen=True)
class CaughtError:
    """What a Step Functions Catch put at `$.error`: {"Error": name, "Cause": text}."""

    error: str
    reason: str
    message: str

    @classmethod
    def from_state(cls, caught: Mapping[str, Any]) -> CaughtError:
        error = str(caught.get("Error") or "States.Unknown")
        message = _error_message(caught.get("Cause") or "")
        prefix, separator, rest = message.partition(": ")
        if separator and _REASON_PREFIX.match(prefix):
            return cls(error, prefix, rest)
        return cls(error, reason_for_error_name(error), message or error)


def _error_message(cause: Any) -> str:
    """A Lambda error's `errorMessage` out of a Catch's Cause (the stack trace stays out)."""
    try:
        document = json.loads(cause) if isinstance(cause, str) else cause
    except json.JSONDecodeError:
        return str(cause)
    if isinstance(document, dict) and "errorMessage" in document:
        return str(document["errorMessage"])
    return str(cause)


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    # A `Reason`; typed StrEnum as the tools subclass with their own (errors.ToolReason there).
    default_reason: ClassVar[StrEnum] = Reason.UNEXPECTED_ERROR

    def __init__(self, message: str, *, reason: StrEnum | None = None) -> None:
        self.reason: str = reason or self.default_reason
        self.message = message
        super().__init__(f"{self.reason}: {message}")


class InvalidInputError(PipelineError):
    """The uploaded object or its metadata cannot become a model request. Never retried."""

    default_reason: ClassVar[StrEnum] = Reason.INVALID_INPUT


class ConfigurationError(PipelineError):
    """The deployment is misconfigured (missing environment, secret, bad prefix). Never retried."""

    default_reason: ClassVar[StrEnum] = Reason.CONFIGURATION_ERROR


class ModelQueueUnavailableError(PipelineError):
    """The model's queue could not be reached or kept failing transiently. Safe to retry."""

    default_reason = Reason.MODEL_QUEUE_UNAVAILABLE


class ModelSubmitUncertainError(PipelineError):
    """A submit was sent but no answer came back: it may have been accepted.

    Never retried, because a second submit could pay for the same image twice.
    """

    default_reason = Reason.MODEL_SUBMIT_UNCERTAIN


class ModelRequestRejectedError(PipelineError):
    """The model's queue refused the request (auth, validation, unknown model). Never retried."""

    default_reason = Reason.MODEL_REQUEST_REJECTED


class ModelRequestFailedError(PipelineError):
    """The model ran and reported a failure (COMPLETED with an error, or a failed result)."""

    default_reason = Reason.MODEL_REQUEST_FAILED

    @classmethod
    def from_model(cls, message: str, error_type: str | None) -> ModelRequestFailedError:
        """A failure the model typed itself: its reason is `model_<error_type>`."""
        error = cls(message)
        error.reason = model_reason(error_type)
        error.args = (f"{error.reason}: {message}",)  # what Lambda passes on, with that reason
        return error


class ModelDeadlineExceededError(PipelineError):
    """The request ran (IN_PROGRESS) past the run limit; the pipeline cancels it."""

    default_reason = Reason.DEADLINE_EXCEEDED


class ModelQueueWaitExceededError(PipelineError):
    """Still waiting in the model's queue past the queue-wait limit; the pipeline cancels it."""

    default_reason = Reason.QUEUE_WAIT_EXCEEDED


class OutputCopyError(PipelineError):
    """An output image could not be copied into S3 (bad URL, not an image, too large, truncated)."""

    default_reason = Reason.OUTPUT_COPY_FAILED


class OutputFetchTransientError(OutputCopyError):
    """An output download failed in a way worth retrying (timeout, 5xx, connection reset)."""

    default_reason = Reason.OUTPUT_FETCH_TRANSIENT


class StorageUnavailableError(PipelineError):
    """An S3 call failed for a reason other than a missing object or a denied access. Retried."""

    default_reason = Reason.STORAGE_UNAVAILABLE


class NotificationError(PipelineError):
    """The SNS publish failed. Retried by the state machine; the job's outputs stay in place."""

    default_reason = Reason.NOTIFICATION_FAILED


class BudgetExceededError(PipelineError):
    """The job would pass MaxImagesPerDay: not submitted, never retried (nothing is paid)."""

    default_reason = Reason.BUDGET_EXCEEDED


class ConcurrencyCapReachedError(PipelineError):
    """Every one of MaxConcurrentRequests is in use: the state machine waits and retries."""

    default_reason = Reason.CONCURRENCY_CAP_REACHED


class WebhookRejectedError(PipelineError):
    """A webhook that failed verification; answered 401 and never acted on."""

    default_reason = Reason.WEBHOOK_REJECTED


class CallbackRefusedError(PipelineError):
    """The callback URL breaks a rule: nothing is sent to it."""

    default_reason = Reason.CALLBACK_REFUSED


class CallbackDeliveryError(PipelineError):
    """The receiver kept failing (5xx, timeouts) for the whole retry budget.

    Raised out of the handler on purpose: Lambda retries the event, then hands it to the
    dead-letter queue.
    """

    default_reason = Reason.CALLBACK_UNDELIVERED

"""The pipeline's errors, one module, one hierarchy.

A Lambda that raises reports the exception's class name as `errorType`; Step Functions
uses that as the error name its Retry and Catch rules match on, and the failure branch
turns it back into a notification. So the class names below are part of the contract
with statemachine/edit_pipeline.asl.json: rename one and the state machine changes too.

Every error carries a short machine-readable `reason` (snake_case) for the failure
notification and SNS filter policies, and a message for people. The message travels as
`"<reason>: <message>"` because `errorMessage` is the only text Lambda passes on.
"""

from __future__ import annotations

from typing import ClassVar


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    default_reason: ClassVar[str] = "pipeline_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        self.reason = reason or self.default_reason
        self.message = message
        super().__init__(f"{self.reason}: {message}")


class InvalidInputError(PipelineError):
    """The uploaded object or its metadata cannot become a model request. Never retried."""

    default_reason = "invalid_input"


class ConfigurationError(PipelineError):
    """The deployment is misconfigured (missing environment, secret, bad prefix). Never retried."""

    default_reason = "configuration_error"


class ModelQueueUnavailableError(PipelineError):
    """The model's queue could not be reached or kept failing transiently. Safe to retry."""

    default_reason = "model_queue_unavailable"


class ModelSubmitUncertainError(PipelineError):
    """A submit was sent but no answer came back: it may have been accepted.

    Never retried, because a second submit could pay for the same image twice.
    """

    default_reason = "model_submit_uncertain"


class ModelRequestRejectedError(PipelineError):
    """The model's queue refused the request (auth, validation, unknown model). Never retried."""

    default_reason = "model_request_rejected"


class ModelRequestFailedError(PipelineError):
    """The model ran and reported a failure (COMPLETED with an error, or a failed result)."""

    default_reason = "model_request_failed"


class ModelDeadlineExceededError(PipelineError):
    """The request ran (IN_PROGRESS) past the run limit; the pipeline cancels it."""

    default_reason = "deadline_exceeded"


class ModelQueueWaitExceededError(PipelineError):
    """Still waiting in the model's queue past the queue-wait limit; the pipeline cancels it."""

    default_reason = "queue_wait_exceeded"


class OutputCopyError(PipelineError):
    """An output image could not be copied into S3 (bad URL, not an image, too large, truncated)."""

    default_reason = "output_copy_failed"


class OutputFetchTransientError(OutputCopyError):
    """An output download failed in a way worth retrying (timeout, 5xx, connection reset)."""

    default_reason = "output_fetch_transient"


class StorageUnavailableError(PipelineError):
    """An S3 call failed for a reason other than a missing object or a denied access. Retried."""

    default_reason = "storage_unavailable"


class NotificationError(PipelineError):
    """The SNS publish failed. Retried by the state machine; the job's outputs stay in place."""

    default_reason = "notification_failed"


class BudgetExceededError(PipelineError):
    """The job would pass MaxImagesPerDay: not submitted, never retried (nothing is paid)."""

    default_reason = "budget_exceeded"


class ConcurrencyCapReachedError(PipelineError):
    """Every one of MaxConcurrentRequests is in use: the state machine waits and retries."""

    default_reason = "concurrency_cap_reached"

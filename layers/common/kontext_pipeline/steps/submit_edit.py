"""SubmitEdit: inspect and validate the upload, then submit it to the model exactly once.

Everything that can be checked is checked before the paid call (image type and size, the
prompt and options, the sidecar); the submit itself runs through `JobLedger.submit_once`
(ledger.py), which claims the job, takes its budget (budget.py), submits and records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from kontext_pipeline.core.config import PipelineSettings
from kontext_pipeline.core.errors import ConfigurationError, Reason
from kontext_pipeline.core.models import EditRequest, JobStart, ModelJob, QueueSubmission, utc_now
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.protocols import ModelQueue
from kontext_pipeline.jobs.budget import Budget
from kontext_pipeline.jobs.ledger import JobLedger
from kontext_pipeline.jobs.run_times import RecentRunTimes
from kontext_pipeline.jobs.webhook_rendezvous import expect_webhook
from kontext_pipeline.model_queue.poll_plan import PollPlan
from kontext_pipeline.storage.inspection import (
    InspectedObject,
    inspect_source,
    presign_source,
    source_as_data_uri,
    upload_sidecar,
)
from kontext_pipeline.storage.metadata import (
    EditDefaults,
    EditSpec,
    build_edit_spec,
)

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


# A request that starts at the very end of its allowed wait still reads its input.
PRESIGNED_INPUT_GRACE_SECONDS = 300


@dataclass(frozen=True)
class SubmitPolicy:
    """The settings SubmitEdit reads: the fields of PipelineSettings of the same names
    (config.py documents each, and holds their defaults)."""

    max_input_bytes: int
    max_input_pixels: int
    input_transfer: Literal["presigned", "data_uri"]
    default_prompt: str | None
    default_options: dict[str, Any]
    completion_mode: Literal["poll", "webhook"]
    webhook_url: str | None
    webhook_wait_seconds: int
    queue_wait_seconds: int
    deadline_seconds: int

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> SubmitPolicy:
        return cls(**{field.name: getattr(settings, field.name) for field in fields(cls)})

    @property
    def presigned_input_seconds(self) -> int:
        """The input URL lives as long as the request may wait in the model's queue (the model
        reads it when the request starts), and a grace for the start itself."""
        return self.queue_wait_seconds + PRESIGNED_INPUT_GRACE_SECONDS

    def model_webhook_url(self) -> str | None:
        """Where the model sends its webhook: None when polling; required in webhook mode."""
        if self.completion_mode != "webhook":
            return None
        if not self.webhook_url:
            raise ConfigurationError(
                "COMPLETION_MODE is webhook but WEBHOOK_URL is not set",
                reason=Reason.MISSING_SETTING,
            )
        return self.webhook_url


@dataclass(frozen=True)
class SubmitEditDeps:
    s3: S3Client
    queue: ModelQueue
    ledger: JobLedger
    budget: Budget
    poll_plan: PollPlan
    policy: SubmitPolicy
    run_times: RecentRunTimes | None = None


def run(start: JobStart, deps: SubmitEditDeps) -> ModelJob:
    """Validate everything that can be validated, then submit exactly once (see ledger.py).

    The job's images count against the day's cap and it holds one of the concurrent-request
    slots before it pays (budget.py); a job over the daily cap fails as `budget_exceeded`,
    one over the concurrency cap raises ConcurrencyCapReachedError, which the state machine
    retries after a wait.
    """
    inspected = inspect_source(
        deps.s3,
        start.source,
        max_bytes=deps.policy.max_input_bytes,
        max_pixels=deps.policy.max_input_pixels,
    )
    spec = _edit_spec(start, inspected, deps)
    request = EditRequest(
        prompt=spec.prompt,
        image_url=_image_url(inspected, deps),
        **spec.options.model_dump(exclude_none=True),
    )
    # Checked before the claim: a missing setting must not leave the job claimed and paid for.
    webhook_url = deps.policy.model_webhook_url()
    job_key = start.source.execution_name
    submission = deps.ledger.submit_once(
        job_key,
        lambda: deps.queue.submit(request.to_body(), webhook_url=webhook_url),
        holds=deps.budget.holds(job_key, images=request.num_images, now=utc_now()),
    )
    if webhook_url is not None:
        # Only the webhooks of requests marked here are recorded (webhook_rendezvous.py).
        expect_webhook(deps.ledger.dynamodb, deps.ledger.table_name, submission.request_id)
    logger.append_keys(model_request_id=submission.request_id)
    logger.info(
        "model request submitted",
        extra={"prompt_source": spec.prompt_source, "queue_position": submission.queue_position},
    )
    return _submitted_job(inspected, spec, submission, job_key, deps)


def _edit_spec(start: JobStart, inspected: InspectedObject, deps: SubmitEditDeps) -> EditSpec:
    """The prompt and options: metadata, else the sidecar, over the configured defaults."""
    spec = build_edit_spec(
        inspected.metadata,
        sidecar=upload_sidecar(deps.s3, inspected.source, inspected.metadata),
        defaults=EditDefaults(deps.policy.default_prompt, deps.policy.default_options),
        overrides=start.request.as_fields() if start.request else None,
    )
    if spec.ignored_keys:
        logger.warning("ignoring unknown metadata", extra={"keys": list(spec.ignored_keys)})
    return spec


def _image_url(inspected: InspectedObject, deps: SubmitEditDeps) -> str:
    if deps.policy.input_transfer == "data_uri":
        return source_as_data_uri(deps.s3, inspected)
    return presign_source(
        deps.s3, inspected.source, expires_seconds=deps.policy.presigned_input_seconds
    )


def _submitted_job(
    inspected: InspectedObject,
    spec: EditSpec,
    submission: QueueSubmission,
    job_key: str,
    deps: SubmitEditDeps,
) -> ModelJob:
    submitted_at = utc_now()
    typical = deps.run_times.typical_seconds() if deps.run_times is not None else None
    poll_plan = deps.poll_plan.with_typical_run(typical)
    policy = deps.policy
    return ModelJob(
        source=inspected.source,
        prompt=spec.prompt,
        options=spec.options,
        request_id=submission.request_id,
        status_url=submission.status_url,
        response_url=submission.response_url,
        cancel_url=submission.cancel_url,
        submitted_at=submitted_at,
        checked_at=submitted_at,
        deadline_at=submitted_at + timedelta(seconds=policy.queue_wait_seconds),
        run_limit_seconds=policy.deadline_seconds,
        typical_run_seconds=typical,
        job_key=job_key,
        queue_position=submission.queue_position,
        next_poll_seconds=poll_plan.after_submit(submission.queue_position),
        completion_mode=policy.completion_mode,
        webhook_wait_seconds=policy.webhook_wait_seconds,
    )

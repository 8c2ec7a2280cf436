"""SubmitEdit: inspect and validate the upload, then submit it to the model exactly once.

Everything that can be checked is checked before the paid call (image type and size, the
prompt and options, the sidecar); the submit itself is `JobsStore.submit_once`
(jobs/store.py): claim the job, take a request slot and the day's images, POST, record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from kontext_pipeline.core.config import (
    ConcurrencyCapSettings,
    DailyCapSettings,
    HttpSettings,
    JobsTableSettings,
    ModelQueueSettings,
    ModelSettings,
    PollSettings,
    SubmitSettings,
)
from kontext_pipeline.core.models import JobStart, ModelJob, ModelRequest, QueueSubmission, utc_now
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.protocols import ModelQueue
from kontext_pipeline.jobs.store import JobsStore
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


class SubmitEditSettings(
    ModelSettings,
    HttpSettings,
    ModelQueueSettings,
    JobsTableSettings,
    ConcurrencyCapSettings,
    DailyCapSettings,
    PollSettings,
    SubmitSettings,
):
    """What functions/submit_edit reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class SubmitEditDeps:
    s3: S3Client
    queue: ModelQueue
    jobs: JobsStore
    poll_plan: PollPlan
    policy: SubmitSettings


def run(start: JobStart, deps: SubmitEditDeps) -> ModelJob:
    """Validate everything that can be validated, then submit exactly once (jobs/store.py).

    The job holds one of the concurrent-request slots and its images count against the
    day's cap before it pays; a job over the daily cap fails as `budget_exceeded`,
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
    request = ModelRequest(
        prompt=spec.prompt,
        image_url=_image_url(inspected, deps),
        **spec.options.model_dump(exclude_none=True),
    )
    # Checked before the claim: a missing setting must not leave the job claimed and paid for.
    webhook_url = deps.policy.model_webhook_url()
    job_key = start.source.execution_name
    submission = deps.jobs.submit_once(
        job_key,
        lambda: deps.queue.submit(request.to_body(), webhook_url=webhook_url),
        images=request.num_images,
        now=utc_now(),
    )
    if webhook_url is not None:
        # Only the webhooks of requests marked here are recorded (webhook_rendezvous.py).
        deps.jobs.expect_webhook(submission.request_id)
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
    typical = deps.jobs.run_times.typical_seconds()
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

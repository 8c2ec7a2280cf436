"""ReportFailure: the state machine's failure branch. Cancel what may still be running (so it
is not billed), free the job's concurrency slot, then publish why the job failed.

Every part but the publish is best effort: a failure is reported whatever else fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from kontext_pipeline.core.config import (
    ConcurrencyCapSettings,
    EventBusSettings,
    HttpSettings,
    JobsTableSettings,
    ModelQueueSettings,
    ModelSettings,
    NotificationSettings,
)
from kontext_pipeline.core.errors import (
    CaughtError,
    ConfigurationError,
    PipelineError,
    StorageUnavailableError,
)
from kontext_pipeline.core.models import SourceObject, TaskEnvelope
from kontext_pipeline.core.notification import FailureDetail, Notification
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.protocols import ModelQueue, Publisher
from kontext_pipeline.jobs.store import JobsStore
from kontext_pipeline.storage.inspection import object_request, upload_sidecar
from kontext_pipeline.storage.metadata import PROMPT_FIELD, normalise_metadata

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


class ReportFailureSettings(
    ModelSettings,
    HttpSettings,
    ModelQueueSettings,
    JobsTableSettings,
    ConcurrencyCapSettings,
    EventBusSettings,
    NotificationSettings,
):
    """What functions/report_failure reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class ReportFailureDeps:
    """Without a queue client nothing is cancelled; without S3 nothing is read back."""

    publisher: Publisher
    queue: ModelQueue | None = None
    s3: S3Client | None = None
    jobs: JobsStore | None = None


def run(task: TaskEnvelope[dict[str, Any]], deps: ReportFailureDeps) -> Notification:
    """Cancel what may still be running (so it is not billed), then publish the failure."""
    state = task.job
    caught = CaughtError.from_state(state.get("error") or {})
    source = _source_in(state)
    # Before the submit returned, the state holds the event's object: the key it claimed.
    job_key = str(state.get("job_key") or source.execution_name)
    prompt = state.get("prompt")
    if deps.s3 is not None and (prompt is None or source.version_id is None):
        source, prompt = _read_back_upload(deps.s3, source, prompt)
    request_id = state.get("request_id")
    _clean_up_quietly(state, deps, job_key)
    notification = Notification(
        status="FAILED",
        source=source,
        request_id=request_id,
        prompt=prompt,
        failure=FailureDetail(reason=caught.reason, error=caught.error, message=caught.message),
        execution=task.execution_id,
    )
    deps.publisher.publish_once(notification)
    logger.warning("job failed", extra={"reason": caught.reason, "error": caught.error})
    return notification


def _source_in(state: Mapping[str, Any]) -> SourceObject:
    try:
        return SourceObject.model_validate(state["source"])
    except (KeyError, ValidationError) as exc:
        raise ConfigurationError(f"failure state without a source object: {exc}") from exc


def _clean_up_quietly(state: Mapping[str, Any], deps: ReportFailureDeps, job_key: str) -> None:
    """Cancel the request if it may still run, and free the job's slot; neither may raise."""
    cancel_url = state.get("cancel_url")
    if deps.queue is not None and cancel_url and state.get("status") != "COMPLETED":
        _cancel_quietly(deps.queue, str(cancel_url), state.get("request_id"))
    if deps.jobs is not None:
        _free_slot_quietly(deps.jobs, job_key)


def _read_back_upload(
    s3: S3Client, source: SourceObject, prompt: str | None
) -> tuple[SourceObject, str | None]:
    """The version and prompt of an upload whose job failed before SubmitEdit returned.

    Its state then holds only the event's object: no prompt, and no version when the event
    carried none. Read back best effort (a failure is reported whatever S3 says), and only
    from the same upload (same ETag), so the notification names what a success would.
    """
    try:
        head = s3.head_object(**object_request(source))
    except (ClientError, BotoCoreError):
        return source, prompt
    if source.etag and str(head.get("ETag", "")).strip('"') != source.etag.strip('"'):
        return source, prompt  # overwritten since: the metadata is another upload's
    read_back = source.model_copy(update={"version_id": head.get("VersionId")})
    if source.version_id is None and read_back.pinned_version:
        source = read_back
    if prompt is None:
        prompt = _uploaded_prompt(s3, source, head.get("Metadata") or {})
    return source, prompt


def _uploaded_prompt(s3: S3Client, source: SourceObject, metadata: Mapping[str, str]) -> str | None:
    try:
        sidecar = upload_sidecar(s3, source, metadata)
        prompt = (
            sidecar.fields.get(PROMPT_FIELD)
            if sidecar
            else normalise_metadata(metadata).get(PROMPT_FIELD)
        )
    except PipelineError:
        return None  # an unreadable prompt is what failed the job: the failure says so
    return prompt if isinstance(prompt, str) and prompt else None


def _free_slot_quietly(jobs: JobsStore, job_key: str) -> None:
    # Idempotent (only a slot this job holds is freed). Reporting the failure matters more:
    # a slot left held after the client's own retries is logged for an operator instead.
    try:
        jobs.release_slot(job_key)
    except StorageUnavailableError:
        logger.exception("concurrency slot not freed", extra={"job_key": job_key})


def _cancel_quietly(queue: ModelQueue, cancel_url: str, request_id: Any) -> None:
    # Reporting the failure matters more than the cancel: never let the cancel stop it.
    try:
        outcome = queue.cancel(cancel_url)
    except (PipelineError, httpx.HTTPError) as exc:
        logger.warning("cancel failed", extra={"model_request_id": request_id, "why": str(exc)})
        return
    logger.info(
        "model request cancel",
        extra={
            "model_request_id": request_id,
            "outcome": outcome.status,
            # A running request only gets a signal: it may still finish (and be billed).
            "may_still_run": outcome.may_still_run,
        },
    )

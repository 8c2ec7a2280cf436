"""The pipeline's steps, one function per state of the state machine.

    start_edit_jobs   S3 event  -> one execution per object version (deterministic name)
    submit_edit       JobStart  -> ModelJob   (inspect, validate, presign, submit once)
    check_status      ModelJob  -> ModelJob   (poll, inline while due soon; plan the wait; limits)
    collect_outputs   ModelJob  -> Notification (copy outputs, manifest, publish success)
    report_failure    any state + error -> Notification (cancel if needed, publish failure)

Each takes the clients it needs as arguments; functions/*/app.py only wires them up.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from kontext_pipeline.budget import Budget
from kontext_pipeline.config import PipelineSettings
from kontext_pipeline.errors import (
    BudgetExceededError,
    CaughtError,
    ConcurrencyCapReachedError,
    ConfigurationError,
    ModelDeadlineExceededError,
    ModelQueueUnavailableError,
    ModelQueueWaitExceededError,
    ModelRequestFailedError,
    ModelRequestRejectedError,
    PipelineError,
    Reason,
    StorageUnavailableError,
    aws_error_code,
)
from kontext_pipeline.fal import FalQueueClient
from kontext_pipeline.inspection import (
    SIDECAR_SUFFIXES,
    inspect_source,
    presign_source,
    read_sidecar,
    source_as_data_uri,
)
from kontext_pipeline.ledger import JobLedger
from kontext_pipeline.metadata import (
    PROMPT_FIELD,
    build_edit_spec,
    normalise_metadata,
    parse_sidecar,
)
from kontext_pipeline.models import (
    CONTENT_TYPES,
    EditOverrides,
    EditRequest,
    JobStart,
    ModelJob,
    QueueStatus,
    SourceObject,
    utc_now,
)
from kontext_pipeline.notify import Notifier
from kontext_pipeline.observability import logger
from kontext_pipeline.outcomes import FailureDetail, Manifest, Notification, StoredOutput
from kontext_pipeline.outputs import (
    OutputPolicy,
    copy_output,
    output_folder,
    read_manifest,
    write_manifest,
)
from kontext_pipeline.polling import PollPlan
from kontext_pipeline.run_times import RecentRunTimes

EXECUTION_NAME_MAX = 80
MANIFEST_NAME = "manifest.json"


# --- start ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartOutcome:
    source: SourceObject
    outcome: str  # started | duplicate | skipped
    detail: str


def source_from_s3_record(record: Mapping[str, Any]) -> SourceObject:
    """An S3 event record's object; event keys are URL-encoded with `+` for spaces."""
    s3 = record["s3"]
    obj = s3["object"]
    return SourceObject(
        bucket=s3["bucket"]["name"],
        key=unquote_plus(obj["key"]),
        version_id=obj.get("versionId"),
        sequencer=obj.get("sequencer"),
        size=obj.get("size"),
        etag=obj.get("eTag"),
    )


def execution_name_for(source: SourceObject) -> str:
    """One name per object version: a repeated event cannot start a second execution.

    The version id identifies a write in a versioned bucket (the template's is), and it is
    all the name uses when known, so a backfill, which lists objects and has no event
    sequencer, names an upload's job exactly as the trigger did (backfill.py). Without a
    version id the sequencer identifies the write (duplicate deliveries of one event carry
    the same sequencer, an overwrite a new one), with the ETag where the event has no
    sequencer either.
    """
    if source.version_id and source.version_id != "null":
        identity = "\n".join((source.bucket, source.key, source.version_id))
    else:
        identity = "\n".join(
            (source.bucket, source.key, "", source.sequencer or "", (source.etag or "").strip('"'))
        )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    stem = source.key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "object"
    return f"{slug}-{digest}"[:EXECUTION_NAME_MAX]


def skip_reason(source: SourceObject, settings: PipelineSettings) -> str | None:
    """Why an event must not become a job, or None. This is the recursion guard in code."""
    if not source.key.startswith(settings.input_prefix):
        return f"outside the input prefix {settings.input_prefix!r}"
    output_bucket = settings.output_bucket or source.bucket
    if output_bucket == source.bucket and source.key.startswith(settings.output_prefix):
        return "written by this pipeline (output prefix): never processed again"
    if source.key.endswith("/"):
        return "a folder marker"
    if source.key.lower().endswith(SIDECAR_SUFFIXES):
        return "a prompt sidecar, read by the job of the image it belongs to"
    return None


def start_edit_jobs(
    records: Iterable[Mapping[str, Any]],
    *,
    stepfunctions: Any,
    state_machine_arn: str,
    settings: PipelineSettings,
) -> list[StartOutcome]:
    outcomes = []
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        source = source_from_s3_record(record)
        reason = skip_reason(source, settings)
        if reason:
            logger.info("skipping object", extra={"object_key": source.key, "why": reason})
            outcomes.append(StartOutcome(source, "skipped", reason))
            continue
        outcomes.append(start_job(stepfunctions, state_machine_arn, source))
    return outcomes


def start_job(
    stepfunctions: Any,
    state_machine_arn: str,
    source: SourceObject,
    *,
    request: EditOverrides | None = None,
) -> StartOutcome:
    """Start the one execution of this object version, or count it as a duplicate.

    The trigger and the backfill both start jobs here, so they share the naming rule.
    """
    name = execution_name_for(source)
    # received_at differs between deliveries, so a replay fails with ExecutionAlreadyExists
    # (same name, other input) and is counted as a duplicate, rather than being silently
    # answered with the running execution as an identical input would be.
    start = JobStart(source=source, received_at=utc_now(), request=request)
    try:
        response = stepfunctions.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=start.model_dump_json()
        )
    except ClientError as exc:
        if aws_error_code(exc) == "ExecutionAlreadyExists":
            logger.info("duplicate event: job already exists", extra={"execution_name": name})
            return StartOutcome(source, "duplicate", name)
        raise
    logger.info("job started", extra={"execution_arn": response["executionArn"]})
    return StartOutcome(source, "started", response["executionArn"])


# --- submit -----------------------------------------------------------------------------


def submit_edit(
    start: JobStart,
    *,
    s3: Any,
    fal: FalQueueClient,
    ledger: JobLedger,
    settings: PipelineSettings,
    poll_plan: PollPlan,
    budget: Budget | None = None,
    run_times: RecentRunTimes | None = None,
) -> ModelJob:
    """Validate everything that can be validated, then submit exactly once (see ledger.py).

    With a budget, the job's images count against the day's cap and it holds one of the
    concurrent-request slots before it pays (budget.py); a job over the daily cap fails as
    `budget_exceeded`, one over the concurrency cap raises ConcurrencyCapReachedError,
    which the state machine retries after a wait.
    """
    inspected = inspect_source(
        s3,
        start.source,
        max_bytes=settings.max_input_bytes,
        max_pixels=settings.max_input_pixels,
    )
    sidecar_name, sidecar = None, None
    if not normalise_metadata(inspected.metadata).get(PROMPT_FIELD):
        found = read_sidecar(s3, inspected.source)
        if found:
            sidecar_name, text = found
            sidecar = parse_sidecar(text, name=sidecar_name)
    spec = build_edit_spec(
        inspected.metadata,
        sidecar=sidecar,
        sidecar_name=sidecar_name,
        default_prompt=settings.default_prompt,
        default_options=settings.default_options,
        overrides=start.request.as_fields() if start.request else None,
    )
    if spec.ignored_keys:
        logger.warning("ignoring unknown metadata", extra={"keys": list(spec.ignored_keys)})
    if settings.input_transfer == "data_uri":
        image_url = source_as_data_uri(s3, inspected)
    else:
        image_url = presign_source(
            s3, inspected.source, expires_seconds=settings.presign_expires_seconds
        )
    request = EditRequest(
        prompt=spec.prompt, image_url=image_url, **spec.options.model_dump(exclude_none=True)
    )
    job_key = execution_name_for(start.source)
    submission = ledger.claim_submit(job_key)
    if submission is not None:
        logger.warning(
            "reusing the request an earlier attempt submitted",
            extra={"model_request_id": submission.request_id},
        )
    else:
        budget = budget or Budget(ledger.dynamodb, ledger.table_name)
        # One day for the spend and any refund, even if the submit straddles midnight (UTC).
        reserved_at = utc_now()
        _reserve_budget(budget, ledger, job_key, images=request.num_images, now=reserved_at)
        try:
            submission = fal.submit(request.to_body(), webhook_url=webhook_url_for(settings))
        except (ModelQueueUnavailableError, ModelRequestRejectedError):
            # Nothing was accepted: the images and the slot go back, and a retry may submit.
            budget.release_slot(job_key)
            budget.refund_images(request.num_images, now=reserved_at)
            ledger.release_claim(job_key)
            raise
        try:
            ledger.record_submit(job_key, submission)
        except StorageUnavailableError:
            # The execution history still gets the request id from this task's result.
            logger.exception("submitted but not recorded in the jobs table")
    submitted_at = utc_now()
    typical = run_times.typical_seconds() if run_times is not None else None
    poll_plan = poll_plan.with_typical_run(typical)
    logger.append_keys(model_request_id=submission.request_id)
    logger.info(
        "model request submitted",
        extra={"prompt_source": spec.prompt_source, "queue_position": submission.queue_position},
    )
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
        deadline_at=submitted_at + timedelta(seconds=settings.queue_wait_seconds),
        run_limit_seconds=settings.deadline_seconds,
        typical_run_seconds=typical,
        job_key=job_key,
        queue_position=submission.queue_position,
        next_poll_seconds=poll_plan.after_submit(submission.queue_position),
        completion_mode=settings.completion_mode,
        webhook_wait_seconds=settings.webhook_wait_seconds,
    )


def _reserve_budget(
    budget: Budget, ledger: JobLedger, job_key: str, *, images: int, now: datetime
) -> None:
    """Take a slot, then count the images, before paying; undo both if either is refused.

    The slot comes first, so a job that has to wait holds no images meanwhile (which could
    refuse another job the day's last images).
    """
    try:
        budget.take_slot(job_key)
    except (ConcurrencyCapReachedError, StorageUnavailableError):
        ledger.release_claim(job_key)  # the retry after the wait claims again
        raise
    try:
        budget.spend_images(images, now=now)
    except (BudgetExceededError, StorageUnavailableError):
        budget.release_slot(job_key)
        ledger.release_claim(job_key)
        raise


def webhook_url_for(settings: PipelineSettings) -> str | None:
    if settings.completion_mode != "webhook":
        return None
    if not settings.webhook_url:
        raise ConfigurationError(
            "COMPLETION_MODE is webhook but WEBHOOK_URL is not set", reason=Reason.MISSING_SETTING
        )
    return settings.webhook_url


# --- poll -------------------------------------------------------------------------------


def check_status(
    job: ModelJob,
    *,
    fal: FalQueueClient,
    poll_plan: PollPlan,
    now: Callable[[], datetime] = utc_now,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ModelJob:
    """Ask the queue; while the answer is due within the inline budget, ask again here.

    COMPLETED moves on; an error, a run past the run limit or a wait past the queue-wait
    limit fails the job (ReportFailure cancels). Otherwise the job goes back to the Wait
    loop with the plan's next wait (polling.py).
    """
    plan = poll_plan.with_typical_run(job.typical_run_seconds)
    inline_until = clock() + plan.inline_budget_seconds
    while True:
        status = fal.status(job.status_url)
        job = _observe(job, status, now())
        if job.status == "COMPLETED":
            return job
        checked_at = job.checked_at or job.submitted_at
        if job.status == "IN_QUEUE":
            until = plan.until_worth_asking_queued(job.queue_position, job.seconds_per_position)
        else:
            running_since = job.in_progress_since or checked_at
            until = plan.until_worth_asking_running((checked_at - running_since).total_seconds())
        until = min(until, _until_limit(job, checked_at))
        # Bounded: each turn sleeps (until the answer is worth asking for, at least one
        # interval), and the budget ends the loop.
        if plan.keep_asking_inline(until, inline_until - clock()):
            sleep(max(plan.inline_interval_seconds, until))
            continue
        wait = plan.loop_wait(
            until, queued=job.status == "IN_QUEUE", pace_known=job.seconds_per_position is not None
        )
        # Never sleep past a limit: the next look lands on it, so the cancel is prompt.
        wait = min(wait, max(1, math.ceil(_until_limit(job, checked_at))))
        return job.model_copy(update={"next_poll_seconds": wait})


def _observe(job: ModelJob, status: QueueStatus, now: datetime) -> ModelJob:
    """The job after one status answer; raises when the answer or a limit ends it."""
    polls = job.polls + 1
    last_seen = job.checked_at or job.submitted_at
    if status.status == "COMPLETED":
        if status.error:
            kind = f" (error_type {status.error_type})" if status.error_type else ""
            raise ModelRequestFailedError.from_model(
                f"the model reported: {status.error}{kind}", status.error_type
            )
        return job.model_copy(
            update={
                "status": "COMPLETED",
                "polls": polls,
                "queue_position": None,
                "next_poll_seconds": 0,
                "checked_at": now,
                "run_seconds": _run_seconds(job, status, now),
            }
        )
    if status.status == "IN_QUEUE":
        if now >= job.deadline_at:
            raise ModelQueueWaitExceededError(
                f"request {job.request_id} still waiting in the model's queue (position "
                f"{status.queue_position}) {(now - job.submitted_at).total_seconds():.0f} s "
                "after submit (queue-wait limit)"
            )
        return job.model_copy(
            update={
                "status": "IN_QUEUE",
                "queue_position": status.queue_position,
                "seconds_per_position": _queue_pace(job, status, now),
                "checked_at": now,
                "polls": polls,
            }
        )
    # The queue does not say when the run began: it lies between the last look that saw it
    # waiting (or the submit), which the plan aims from, and this one, which the limit
    # counts from, so neither looks late nor cancels early.
    running_since = job.in_progress_since or last_seen
    seen_running_at = job.seen_running_at or now
    running_for = (now - seen_running_at).total_seconds()
    if job.run_limit_seconds and running_for >= job.run_limit_seconds:
        raise ModelDeadlineExceededError(
            f"request {job.request_id} still {status.status} {running_for:.0f} s after it "
            "was first seen running (run limit)"
        )
    return job.model_copy(
        update={
            "status": status.status,
            "queue_position": None,
            "in_progress_since": running_since,
            "seen_running_at": seen_running_at,
            "checked_at": now,
            "polls": polls,
        }
    )


def _queue_pace(job: ModelJob, status: QueueStatus, now: datetime) -> float | None:
    """Seconds per queue position, from how far the queue moved since the last look."""
    if job.status != "IN_QUEUE" or job.queue_position is None or status.queue_position is None:
        return job.seconds_per_position
    moved = job.queue_position - status.queue_position
    elapsed = (now - (job.checked_at or job.submitted_at)).total_seconds()
    if moved <= 0 or elapsed <= 0:
        return job.seconds_per_position
    return elapsed / moved


def _run_seconds(job: ModelJob, status: QueueStatus, now: datetime) -> float | None:
    """The model's own inference time when the queue reports it, else what polls saw."""
    reported = status.metrics.get("inference_time")
    if isinstance(reported, int | float) and reported > 0:
        return float(reported)
    if job.in_progress_since is not None:
        return (now - job.in_progress_since).total_seconds()
    return None


def _until_limit(job: ModelJob, at: datetime) -> float:
    """Seconds from `at` until the limit that applies to the job's state now."""
    if job.status == "IN_PROGRESS" and job.run_limit_seconds:
        started = job.seen_running_at or at
        return job.run_limit_seconds - (at - started).total_seconds()
    return (job.deadline_at - at).total_seconds()


# --- collect ----------------------------------------------------------------------------


def collect_outputs(
    job: ModelJob,
    *,
    s3: Any,
    http: httpx.Client,
    fal: FalQueueClient,
    notifier: Notifier,
    settings: PipelineSettings,
    policy: OutputPolicy,
    execution_id: str | None = None,
    budget: Budget | None = None,
    run_times: RecentRunTimes | None = None,
) -> Notification:
    """Copy every output into S3, write the manifest last, publish the success notification.

    Safe to run twice: output keys are fixed by the request id, and an existing manifest
    means the copy already completed, so a retry only publishes.
    """
    if budget is not None:
        # The model is done with the request: its concurrency slot is free (idempotent).
        budget.release_slot(job.job_key or execution_name_for(job.source))
    bucket = settings.output_bucket or job.source.bucket
    folder = output_folder(
        job.source,
        input_prefix=settings.input_prefix,
        output_prefix=settings.output_prefix,
        job=job.request_id,
    )
    manifest_key = folder + MANIFEST_NAME
    manifest = read_manifest(s3, bucket=bucket, key=manifest_key)
    if manifest is None:
        manifest = _copy_all(
            job, s3=s3, http=http, fal=fal, bucket=bucket, folder=folder, policy=policy
        )
        write_manifest(s3, manifest, bucket=bucket, key=manifest_key)
    else:
        logger.info("outputs already complete; publishing only", extra={"manifest": manifest_key})
    notification = Notification(
        status="SUCCEEDED",
        source=job.source,
        request_id=job.request_id,
        prompt=job.prompt,
        outputs=manifest.outputs,
        manifest_uri=f"s3://{bucket}/{manifest_key}",
        seed=manifest.seed,
        has_nsfw_concepts=manifest.has_nsfw_concepts,
        timings=manifest.timings,
        execution=execution_id,
    )
    notifier.publish_once(notification)
    if run_times is not None:
        # What this run took plans the next jobs' polls (webhook mode: the result's timing).
        inference = manifest.timings.get("inference")
        seconds = job.run_seconds or (float(inference) if isinstance(inference, int | float) else 0)
        run_times.record(seconds)
    return notification


def _copy_all(
    job: ModelJob,
    *,
    s3: Any,
    http: httpx.Client,
    fal: FalQueueClient,
    bucket: str,
    folder: str,
    policy: OutputPolicy,
) -> Manifest:
    # A verified webhook's payload is the result; otherwise fetch it now, while fal keeps it.
    result = job.result or fal.result(job.response_url)
    if not result.images:
        raise ModelRequestFailedError("the model returned no images", reason=Reason.NO_OUTPUTS)
    expected_type = CONTENT_TYPES[job.options.output_format]
    lineage = {
        "source-key": job.source.key,
        "source-bucket": job.source.bucket,
        "source-version": job.source.version_id or "",
        "request-id": job.request_id,
        "prompt": job.prompt,
        "seed": "" if result.seed is None else str(result.seed),
    }
    outputs: list[StoredOutput] = []
    for index, image in enumerate(result.images):
        stored = copy_output(
            s3,
            http,
            image.url,
            bucket=bucket,
            key_stem=f"{folder}{index}",
            expected_type=image.content_type or expected_type,
            policy=policy,
            lineage=lineage,
        )
        outputs.append(stored.model_copy(update={"width": image.width, "height": image.height}))
    logger.info("outputs copied", extra={"count": len(outputs), "folder": folder})
    return Manifest(
        source=job.source,
        request_id=job.request_id,
        prompt=job.prompt,
        options=job.options,
        seed=result.seed,
        has_nsfw_concepts=result.has_nsfw_concepts,
        timings=result.timings,
        outputs=outputs,
    )


# --- failure ----------------------------------------------------------------------------


def report_failure(
    state: Mapping[str, Any],
    *,
    fal: FalQueueClient | None,
    notifier: Notifier,
    execution_id: str | None = None,
    s3: Any = None,
    budget: Budget | None = None,
) -> Notification:
    """Cancel what may still be running (so it is not billed), then publish the failure."""
    caught = CaughtError.from_state(state.get("error") or {})
    try:
        source = SourceObject.model_validate(state["source"])
    except (KeyError, ValidationError) as exc:
        raise ConfigurationError(f"failure state without a source object: {exc}") from exc
    # Before the submit returned, the state holds the event's object: the key it claimed.
    job_key = str(state.get("job_key") or execution_name_for(source))
    prompt = state.get("prompt")
    if s3 is not None and (prompt is None or source.version_id is None):
        source, prompt = _read_back_upload(s3, source, prompt)
    request_id = state.get("request_id")
    cancel_url = state.get("cancel_url")
    if fal is not None and cancel_url and state.get("status") != "COMPLETED":
        _cancel_quietly(fal, str(cancel_url), request_id)
    if budget is not None:
        _free_slot_quietly(budget, job_key)
    notification = Notification(
        status="FAILED",
        source=source,
        request_id=request_id,
        prompt=prompt,
        failure=FailureDetail(reason=caught.reason, error=caught.error, message=caught.message),
        execution=execution_id,
    )
    notifier.publish_once(notification)
    logger.warning("job failed", extra={"reason": caught.reason, "error": caught.error})
    return notification


def _read_back_upload(
    s3: Any, source: SourceObject, prompt: str | None
) -> tuple[SourceObject, str | None]:
    """The version and prompt of an upload whose job failed before SubmitEdit returned.

    Its state then holds only the event's object: no prompt, and no version when the event
    carried none. Read back best effort (a failure is reported whatever S3 says), and only
    from the same upload (same ETag), so the notification names what a success would.
    """
    pinned = {"VersionId": source.version_id} if source.version_id else {}
    try:
        head = s3.head_object(Bucket=source.bucket, Key=source.key, **pinned)
    except (ClientError, BotoCoreError):
        return source, prompt
    if source.etag and str(head.get("ETag", "")).strip('"') != source.etag.strip('"'):
        return source, prompt  # overwritten since: the metadata is another upload's
    version = head.get("VersionId")
    if source.version_id is None and version and version != "null":
        source = source.model_copy(update={"version_id": version})
    if prompt is None:
        prompt = _uploaded_prompt(s3, source, head.get("Metadata") or {})
    return source, prompt


def _uploaded_prompt(s3: Any, source: SourceObject, metadata: Mapping[str, str]) -> str | None:
    try:
        prompt = normalise_metadata(metadata).get(PROMPT_FIELD)
        found = None if prompt else read_sidecar(s3, source)
        if found:
            prompt = parse_sidecar(found[1], name=found[0]).get(PROMPT_FIELD)
    except PipelineError:
        return None  # an unreadable prompt is what failed the job: the failure says so
    return prompt if isinstance(prompt, str) and prompt else None


def _free_slot_quietly(budget: Budget, job_key: str) -> None:
    # Idempotent (only a slot this job holds is freed). Reporting the failure matters more:
    # a slot left held after the client's own retries is logged for an operator instead.
    try:
        budget.release_slot(job_key)
    except StorageUnavailableError:
        logger.exception("concurrency slot not freed", extra={"job_key": job_key})


def _cancel_quietly(fal: FalQueueClient, cancel_url: str, request_id: Any) -> None:
    # Reporting the failure matters more than the cancel: never let the cancel stop it.
    try:
        outcome = fal.cancel(cancel_url)
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

"""CollectOutputs: copy every output into S3, write the manifest last, publish the success.

Safe to run twice: output keys are fixed by the request id, and an existing manifest
means the copy already completed, so a retry only publishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from kontext_pipeline.core.config import (
    ConcurrencyCapSettings,
    EventBusSettings,
    HttpSettings,
    JobsTableSettings,
    ModelQueueSettings,
    ModelSettings,
    NotificationSettings,
    OutputSettings,
    ScopeSettings,
)
from kontext_pipeline.core.errors import ModelRequestFailedError, Reason
from kontext_pipeline.core.models import ModelJob, TaskEnvelope
from kontext_pipeline.core.notification import Manifest, Notification, StoredOutput
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.protocols import ModelQueue, Publisher
from kontext_pipeline.jobs.store import JobsStore
from kontext_pipeline.storage.output_copy import (
    OutputPlace,
    copy_output,
    output_folder,
    read_manifest,
    write_manifest,
)
from kontext_pipeline.storage.output_origins import OutputPolicy
from kontext_pipeline.storage.scope import EditScope

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

MANIFEST_NAME = "manifest.json"


class CollectOutputsSettings(
    ModelSettings,
    HttpSettings,
    ModelQueueSettings,
    ScopeSettings,
    JobsTableSettings,
    ConcurrencyCapSettings,
    OutputSettings,
    EventBusSettings,
    NotificationSettings,
):
    """What functions/collect_outputs reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class CollectOutputsDeps:
    s3: S3Client
    http: httpx.Client
    queue: ModelQueue
    publisher: Publisher
    jobs: JobsStore
    # Where the outputs go, and where they may be fetched from.
    scope: EditScope
    policy: OutputPolicy


def run(task: TaskEnvelope[ModelJob], deps: CollectOutputsDeps) -> Notification:
    """Copy every output into S3, write the manifest last, publish the success notification."""
    job = task.job
    bucket = deps.scope.output_bucket_for(job.source)
    folder = output_folder(
        job.source,
        input_prefix=deps.scope.input_prefix,
        output_prefix=deps.scope.output_prefix,
        job=job.request_id,
    )
    manifest_key = folder + MANIFEST_NAME
    manifest = read_manifest(deps.s3, bucket=bucket, key=manifest_key)
    if manifest is None:
        manifest = _copy_all(job, deps, bucket=bucket, folder=folder)
        write_manifest(deps.s3, manifest, bucket=bucket, key=manifest_key)
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
        execution=task.execution_id,
    )
    deps.publisher.publish_once(notification)
    # After the publish, which is what the user waits on. The model was done with the
    # request when CheckStatus saw it complete; a failure from here on is retried, and
    # a retry finds the manifest and the publish done. ReportFailure frees the slot
    # of a job that never gets here.
    deps.jobs.release_slot(job.job_key or job.source.execution_name)
    _learn_run_time(job, manifest, deps.jobs)
    return notification


def _learn_run_time(job: ModelJob, manifest: Manifest, jobs: JobsStore) -> None:
    """What this run took plans the next jobs' polls (webhook mode: the result's timing)."""
    inference = manifest.timings.get("inference")
    seconds = job.run_seconds or (float(inference) if isinstance(inference, int | float) else 0)
    jobs.run_times.record(seconds)


def _copy_all(job: ModelJob, deps: CollectOutputsDeps, *, bucket: str, folder: str) -> Manifest:
    # A verified webhook's payload is the result; otherwise fetch it now, while fal keeps it.
    result = job.result or deps.queue.result(job.response_url)
    if not result.images:
        raise ModelRequestFailedError("the model returned no images", reason=Reason.NO_OUTPUTS)
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
        place = OutputPlace(bucket=bucket, key_stem=f"{folder}{index}", lineage=lineage)
        stored = copy_output(deps.s3, deps.http, image.url, place, deps.policy)
        outputs.append(stored.model_copy(update={"width": image.width, "height": image.height}))
    logger.info("outputs copied", extra={"count": len(outputs), "folder": folder})
    return Manifest(
        # The job's own source, request, prompt and options, beside what the model answered.
        **job.model_dump(include={"source", "request_id", "prompt", "options"}),
        seed=result.seed,
        has_nsfw_concepts=result.has_nsfw_concepts,
        timings=result.timings,
        outputs=outputs,
    )

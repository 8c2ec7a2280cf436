"""State machine task: inspect and validate the upload, then submit it to the model once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.models import JobStart, TaskEnvelope
from kontext_pipeline.core.observability import MetricUnit, metrics
from kontext_pipeline.core.task_envelope import read_task_envelope
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import submit_edit


def deps_of(runtime: Runtime[submit_edit.SubmitEditSettings]) -> submit_edit.SubmitEditDeps:
    return submit_edit.SubmitEditDeps(
        s3=runtime.s3,
        queue=runtime.model_queue(),
        jobs=runtime.jobs,
        poll_plan=runtime.poll_plan,
        policy=runtime.submit_policy,
    )


def handle(
    event: dict[str, Any], context: LambdaContext, runtime: Runtime[submit_edit.SubmitEditSettings]
) -> dict[str, Any]:
    envelope = read_task_envelope(event, TaskEnvelope[JobStart])
    job = submit_edit.run(envelope.job, deps_of(runtime))
    metrics.add_metric(name="RequestsSubmitted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ImagesRequested", unit=MetricUnit.Count, value=job.options.num_images)
    return job.model_dump(mode="json")


lambda_handler = lambda_entry(handle, submit_edit.SubmitEditSettings, deps=deps_of)

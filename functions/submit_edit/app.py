"""State machine task: inspect and validate the upload, then submit it to the model once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.models import JobStart, TaskEnvelope
from kontext_pipeline.observability import MetricUnit, metrics
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps.submit_edit import SubmitEdit, submit_edit
from kontext_pipeline.task_envelope import read_task_envelope


def handle(event: dict[str, Any], context: LambdaContext, runtime: Runtime) -> dict[str, Any]:
    envelope = read_task_envelope(event, TaskEnvelope[JobStart])
    step = SubmitEdit(
        s3=runtime.s3,
        queue=runtime.fal(),
        ledger=runtime.ledger,
        budget=runtime.budget,
        poll_plan=runtime.poll_plan,
        policy=runtime.submit_policy,
        run_times=runtime.run_times,
    )
    job = submit_edit(envelope.job, step)
    metrics.add_metric(name="RequestsSubmitted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ImagesRequested", unit=MetricUnit.Count, value=job.options.num_images)
    return job.model_dump(mode="json")


lambda_handler = lambda_entry(handle)

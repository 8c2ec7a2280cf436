"""State machine task: inspect and validate the upload, then submit it to the model once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.jobs import submit_edit
from kontext_pipeline.models import JobStart, TaskEnvelope
from kontext_pipeline.observability import MetricUnit, logger, metrics
from kontext_pipeline.runtime import Runtime

RUNTIME = Runtime()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    envelope = TaskEnvelope[JobStart].model_validate(event)
    logger.append_keys(object_key=envelope.job.source.key, execution=envelope.execution_id)
    job = submit_edit(
        envelope.job,
        s3=RUNTIME.s3,
        fal=RUNTIME.fal(),
        ledger=RUNTIME.ledger,
        settings=RUNTIME.settings,
        poll_plan=RUNTIME.poll_plan,
        budget=RUNTIME.budget,
        run_times=RUNTIME.run_times,
    )
    metrics.add_metric(name="RequestsSubmitted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ImagesRequested", unit=MetricUnit.Count, value=job.options.num_images)
    return job.model_dump(mode="json")

"""State machine task: ask the model's queue once and plan the next wait."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.jobs import check_status
from kontext_pipeline.models import ModelJob, TaskEnvelope
from kontext_pipeline.observability import logger, metrics
from kontext_pipeline.runtime import Runtime

RUNTIME = Runtime()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    envelope = TaskEnvelope[ModelJob].model_validate(event)
    logger.append_keys(object_key=envelope.job.source.key, model_request_id=envelope.job.request_id)
    job = check_status(envelope.job, fal=RUNTIME.fal(), poll_plan=RUNTIME.poll_plan)
    logger.info(
        "status",
        extra={
            "status": job.status,
            "queue_position": job.queue_position,
            "next_poll_seconds": job.next_poll_seconds,
        },
    )
    return job.model_dump(mode="json")

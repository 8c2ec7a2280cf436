"""State machine task: ask the model's queue once and plan the next wait."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.observability import job_in, logger, metrics
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps.check_status import check_status

RUNTIME = Runtime()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, runtime: Runtime = RUNTIME
) -> dict[str, Any]:
    job = check_status(job_in(event).job, queue=runtime.fal(), poll_plan=runtime.poll_plan)
    logger.info(
        "status",
        extra={
            "status": job.status,
            "queue_position": job.queue_position,
            "next_poll_seconds": job.next_poll_seconds,
        },
    )
    return job.model_dump(mode="json")

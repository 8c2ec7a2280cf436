"""State machine task: ask the model's queue once and plan the next wait."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.models import ModelJob, TaskEnvelope
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.task_envelope import read_task_envelope
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import check_status


def deps_of(runtime: Runtime[check_status.CheckStatusSettings]) -> check_status.CheckStatusDeps:
    return check_status.CheckStatusDeps(queue=runtime.model_queue(), poll_plan=runtime.poll_plan)


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime[check_status.CheckStatusSettings],
) -> dict[str, Any]:
    envelope = read_task_envelope(event, TaskEnvelope[ModelJob])
    job = check_status.run(envelope.job, deps_of(runtime))
    logger.info(
        "status",
        extra={
            "status": job.status,
            "queue_position": job.queue_position,
            "next_poll_seconds": job.next_poll_seconds,
        },
    )
    return job.model_dump(mode="json")


lambda_handler = lambda_entry(handle, check_status.CheckStatusSettings, deps=deps_of)

"""State machine task (waitForTaskToken): park the job's task token until its webhook comes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.models import ModelJob, TaskEnvelope
from kontext_pipeline.observability import logger
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.task_envelope import read_task_envelope


class AwaitEnvelope(TaskEnvelope[ModelJob]):
    task_token: str


def handle(event: dict[str, Any], context: LambdaContext, runtime: Runtime) -> dict[str, Any]:
    envelope = read_task_envelope(event, AwaitEnvelope)
    outcome = runtime.webhook_rendezvous.register_token(envelope.job, envelope.task_token)
    logger.info("waiting for the model's webhook", extra={"outcome": outcome})
    return {"outcome": outcome}


lambda_handler = lambda_entry(handle)

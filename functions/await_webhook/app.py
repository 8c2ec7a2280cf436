"""State machine task (waitForTaskToken): park the job's task token until its webhook comes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.task_envelope import read_task_envelope
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import await_webhook


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime[await_webhook.AwaitWebhookSettings],
) -> dict[str, Any]:
    envelope = read_task_envelope(event, await_webhook.AwaitEnvelope)
    deps = await_webhook.AwaitWebhookDeps(rendezvous=runtime.webhook_rendezvous)
    outcome = await_webhook.run(envelope, deps)
    logger.info("waiting for the model's webhook", extra={"outcome": outcome})
    return {"outcome": outcome}


lambda_handler = lambda_entry(handle, await_webhook.AwaitWebhookSettings)

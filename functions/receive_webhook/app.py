"""Function URL: the model's signed completion webhook. Verified before anything is read."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.errors import WebhookRejectedError
from kontext_pipeline.core.observability import MetricUnit, logger, metrics
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import receive_webhook


def handle(
    raw_event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime[receive_webhook.ReceiveWebhookSettings],
) -> dict[str, Any]:
    event = LambdaFunctionUrlEvent(raw_event)
    if event.request_context.http.method != "POST":
        return {"statusCode": 405, "body": "POST only"}
    body = event.decoded_body.encode() if event.decoded_body else b""
    deps = receive_webhook.ReceiveWebhookDeps(
        jwks=runtime.jwks,
        rendezvous=runtime.webhook_rendezvous,
        fal_user_id=runtime.settings.fal_user_id,
    )
    try:
        webhook, outcome = receive_webhook.run(
            receive_webhook.WebhookRequest(event.headers, body), deps
        )
    except WebhookRejectedError as exc:
        logger.warning("webhook rejected", extra={"why": exc.message})
        metrics.add_metric(name="WebhooksRejected", unit=MetricUnit.Count, value=1)
        return {"statusCode": 401, "body": "rejected"}
    logger.append_keys(model_request_id=webhook.request_id)
    logger.info("webhook accepted", extra={"status": webhook.status, "outcome": outcome})
    metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200, "body": outcome}


lambda_handler = lambda_entry(handle, receive_webhook.ReceiveWebhookSettings)

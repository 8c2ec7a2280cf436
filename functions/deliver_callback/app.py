"""EventBridge rule target: POST a finished job's signed notification to its callback-url."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.observability import MetricUnit, logger, metrics
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import deliver_callback


def handle(
    raw_event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime[deliver_callback.DeliverCallbackSettings],
) -> dict[str, Any]:
    event = EventBridgeEvent(raw_event)
    notification = event.detail
    logger.append_keys(
        object_key=(notification.get("source") or {}).get("key"),
        model_request_id=notification.get("request_id"),
    )
    # A receiver that keeps failing raises CallbackDeliveryError out of here: Lambda
    # retries the event, then sends it to the dead-letter queue.
    deps = deliver_callback.DeliverCallbackDeps(
        s3=runtime.s3,
        http=runtime.http,
        events=runtime.events,
        event_bus_name=runtime.settings.event_bus_name,
        dynamodb=runtime.dynamodb,
        jobs_table=runtime.jobs_table,
        rules=runtime.callback_rules,
        signing_key_source=runtime.callback_signing_key,
    )
    report = deliver_callback.run(notification, deps)
    if report.outcome != "none":
        metrics.add_metric(
            name=f"Callbacks{report.outcome.title()}", unit=MetricUnit.Count, value=1
        )
    logger.info("callback", extra={"outcome": report.outcome, "detail": report.detail})
    return {"outcome": report.outcome, "detail": report.detail}


lambda_handler = lambda_entry(handle, deliver_callback.DeliverCallbackSettings)

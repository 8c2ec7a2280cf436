"""S3 ObjectCreated under the inputs prefix -> one state machine execution per object version."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.jobs import start_edit_jobs
from kontext_pipeline.observability import MetricUnit, logger, metrics
from kontext_pipeline.runtime import Runtime, required

RUNTIME = Runtime()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    outcomes = start_edit_jobs(
        [record.raw_event for record in event.records],
        stepfunctions=RUNTIME.stepfunctions,
        state_machine_arn=required(RUNTIME.settings.state_machine_arn, "STATE_MACHINE_ARN"),
        settings=RUNTIME.settings,
    )
    for outcome in ("started", "duplicate", "skipped"):
        count = sum(1 for item in outcomes if item.outcome == outcome)
        if count:
            metrics.add_metric(name=f"Jobs{outcome.title()}", unit=MetricUnit.Count, value=count)
    return {
        "jobs": [{"key": o.source.key, "outcome": o.outcome, "detail": o.detail} for o in outcomes]
    }

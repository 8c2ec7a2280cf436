"""S3 ObjectCreated under the inputs prefix -> one state machine execution per object version."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.observability import MetricUnit, metrics
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import start_edit


def deps_of(runtime: Runtime[start_edit.StartEditSettings]) -> start_edit.StartEditDeps:
    return start_edit.StartEditDeps(starter=runtime.job_starter, scope=runtime.edit_scope)


def handle(
    event: dict[str, Any], context: LambdaContext, runtime: Runtime[start_edit.StartEditSettings]
) -> dict[str, Any]:
    records = [record.raw_event for record in S3Event(event).records]
    outcomes = start_edit.run(records, deps_of(runtime))
    for outcome in ("started", "duplicate", "skipped"):
        count = sum(1 for item in outcomes if item.outcome == outcome)
        if count:
            metrics.add_metric(name=f"Jobs{outcome.title()}", unit=MetricUnit.Count, value=count)
    return {
        "jobs": [{"key": o.source.key, "outcome": o.outcome, "detail": o.detail} for o in outcomes]
    }


lambda_handler = lambda_entry(handle, start_edit.StartEditSettings, deps=deps_of)

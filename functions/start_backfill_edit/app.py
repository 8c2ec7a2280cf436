"""Backfill Map item: start the edit of one listed object, as the trigger would."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.observability import MetricUnit, metrics
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import start_backfill_edit


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime[start_backfill_edit.StartBackfillEditSettings],
) -> dict[str, Any]:
    item = start_backfill_edit.BackfillItem.model_validate(event)
    deps = start_backfill_edit.StartBackfillEditDeps(
        s3=runtime.s3, starter=runtime.job_starter, scope=runtime.edit_scope
    )
    outcome = start_backfill_edit.run(item, deps)
    metrics.add_metric(name=f"Backfill{outcome.outcome.title()}", unit=MetricUnit.Count, value=1)
    return {"outcome": outcome.outcome, "key": outcome.source.key, "detail": outcome.detail}


lambda_handler = lambda_entry(handle, start_backfill_edit.StartBackfillEditSettings)

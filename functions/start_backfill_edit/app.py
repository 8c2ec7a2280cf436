"""Backfill Map item: start the edit of one listed object, as the trigger would."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.backfill import BackfillItem, start_backfill_edit
from kontext_pipeline.observability import MetricUnit, logger, metrics
from kontext_pipeline.runtime import Runtime

RUNTIME = Runtime()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, runtime: Runtime = RUNTIME
) -> dict[str, Any]:
    item = BackfillItem.model_validate(event)
    outcome = start_backfill_edit(
        item, s3=runtime.s3, starter=runtime.job_starter, scope=runtime.edit_scope
    )
    metrics.add_metric(name=f"Backfill{outcome.outcome.title()}", unit=MetricUnit.Count, value=1)
    return {"outcome": outcome.outcome, "key": outcome.source.key, "detail": outcome.detail}
